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
}

// memStore is the store without Config.DataDir: nothing survives the
// process.
type memStore struct{}

func (memStore) putMember(handleKey, string, []byte) error { return nil }
func (memStore) deleteMember(handleKey) error              { return nil }
func (memStore) putSession(Session) error                  { return nil }
func (memStore) deleteSession(string) error                { return nil }
