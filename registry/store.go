package registry

// store persists what must outlive the process: durable and session-bound
// members this node owns, and sessions. Every method returns only after the
// change is durable (per the storage sync mode); an error means nothing
// changed.
type store interface {
	putMember(k handleKey, session string, meta []byte) error
	deleteMember(k handleKey) error
	putSession(s Session) error
	deleteSession(id string) error
	// writeMembers applies many puts and deletes with one sync: errs[i]
	// is the error of ws[i] alone (as putMember's: ErrNoSession for a
	// session that is gone), left out while the others are written; err
	// means nothing was written. Keys are distinct.
	writeMembers(ws []memberWrite) (errs []error, err error)
}

// memberWrite is one write of store.writeMembers: a put of k's record
// (bound to session, or durable), or with del its removal.
type memberWrite struct {
	k       handleKey
	session string
	meta    []byte
	del     bool
}

// memStore is the store without Config.DataDir: nothing survives the
// process.
type memStore struct{}

func (memStore) putMember(handleKey, string, []byte) error { return nil }
func (memStore) deleteMember(handleKey) error              { return nil }
func (memStore) putSession(Session) error                  { return nil }
func (memStore) deleteSession(string) error                { return nil }
func (memStore) writeMembers(ws []memberWrite) ([]error, error) {
	return make([]error, len(ws)), nil
}
