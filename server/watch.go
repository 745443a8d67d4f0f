package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/roster-io/roster/apitype"

	"github.com/roster-io/roster/registry/regtype"
)

// IncarnationHeader names the registry run that numbered a watch stream's
// events. Event ids carry it too ("<incarnation>-<seq>"), so a client
// needs only Last-Event-ID to resume; one that resumes with a bare seq
// (an older client) must send this header back to get a replay.
const IncarnationHeader = "Roster-Incarnation"

// replayWait bounds how long a resumed watch waits for the history ring to
// catch up with the registry (it normally lags by microseconds).
const replayWait = 5 * time.Second

// watch: GET /v1/scopes/{scope}/watch[?group=g|?prefix=p][&snapshot=false]
// as Server-Sent Events. See the package documentation for the protocol.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet { // HEAD would open a stream with no end
		w.Header().Set("Allow", http.MethodGet)
		return errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s not allowed on a watch; allowed: GET", r.Method)
	}
	scope := r.PathValue("scope")
	group, prefix := queryParam(r, "group"), queryParam(r, "prefix")
	sel, match := regtype.All(), func(string) bool { return true }
	switch {
	case group != "" && prefix != "":
		return errorf(http.StatusBadRequest, CodeInvalidQuery, "give group or prefix, not both")
	case group != "":
		sel, match = regtype.Group(group), func(g string) bool { return g == group }
	case prefix != "":
		sel, match = regtype.Prefix(prefix), func(g string) bool { return strings.HasPrefix(g, prefix) }
	}
	withSnapshot := true
	if v := queryParam(r, "snapshot"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errorf(http.StatusBadRequest, CodeInvalidQuery, "snapshot=%q is not a boolean", v)
		}
		withSnapshot = b
	}
	inc := s.reg.Incarnation()
	resume, after, foreign := lastEventID(r, inc)
	rw, err := s.reg.Watch(r.Context(), scope, sel)
	if err != nil {
		return err
	}
	defer rw.Close()
	f := s.feeds[scope]
	if f == nil { // cannot happen: a scope the registry serves has a feed
		return errorf(http.StatusNotFound, CodeUnknownScope, "scope %q is not followed", scope)
	}

	if !s.streamStarted() {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "shutting down")
	}
	defer s.streams.Done()
	watchers := s.metrics.watchers.WithLabelValues(scope)
	watchers.Inc()
	defer watchers.Dec()

	rc := http.NewResponseController(w)
	// Streams outlive the server-wide read and write deadlines; each write
	// gets its own (sseWriter.flush).
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set(IncarnationHeader, formatUint(inc))
	w.WriteHeader(http.StatusOK)

	sse := &sseWriter{w: w, rc: rc, inc: inc, timeout: s.cfg.WatchWriteTimeout}
	defer func() {
		if sse.stalled {
			s.metrics.dropped.WithLabelValues(scope).Inc()
			s.log.Info("dropped a watch stream whose client stopped reading", "scope", scope, "remote", r.RemoteAddr)
		}
	}()
	sse.retry(time.Second)
	snapshot := func(typ, reason string, seq uint64, ms []regtype.Member) {
		sse.event(seq, typ, apitype.Snapshot{Type: typ, Reason: reason, Seq: seq, Members: toMembers(ms), Node: s.reg.Name(), Incarnation: inc})
	}
	switch {
	case !resume && !withSnapshot:
		// Changes only (a dashboard's event log): the state is read
		// elsewhere, and a large scope's snapshot would be megabytes.
	case !resume:
		snapshot("snapshot", "", rw.Seq, rw.Snapshot)
	case foreign != "":
		// An id of another run (or none we could read): its seqs mean
		// nothing here.
		s.metrics.resyncs.WithLabelValues(scope, foreign).Inc()
		snapshot("resync", string(regtype.ReasonResync), rw.Seq, rw.Snapshot)
	default:
		evs, ok := f.replay(r.Context(), after, rw.Seq, match, replayWait)
		if !ok {
			s.metrics.resyncs.WithLabelValues(scope, "history").Inc()
			snapshot("resync", string(regtype.ReasonResync), rw.Seq, rw.Snapshot)
			break
		}
		for _, e := range evs {
			sse.change(e)
		}
	}
	if sse.flush() != nil {
		return nil
	}

	heartbeat := time.NewTicker(s.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		select {
		case e, ok := <-rw.C:
			if !ok { // the registry is closing
				return nil
			}
			if e.Type == regtype.EventResync {
				s.metrics.resyncs.WithLabelValues(scope, "behind").Inc()
				snapshot("resync", string(e.Reason), e.Seq, e.Members)
			} else {
				sse.change(e)
			}
		case <-heartbeat.C:
			sse.comment("ping")
		case <-r.Context().Done():
			return nil
		case <-s.stopping:
			return nil
		}
		if sse.flush() != nil {
			return nil
		}
	}
}

// lastEventID reads the resume point: the Last-Event-ID header, or the
// last_event_id query parameter for clients that cannot set headers. An
// event id is "<incarnation>-<seq>". resume is false without one; foreign,
// when not empty, is why the id cannot be resumed from here (the resync
// cause): "incarnation" for an id of another run (or a bare seq without a
// matching IncarnationHeader), "malformed" for one that is not an id.
func lastEventID(r *http.Request, inc uint64) (resume bool, after uint64, foreign string) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = queryParam(r, "last_event_id")
	}
	if v = strings.TrimSpace(v); v == "" {
		return false, 0, ""
	}
	runPart, seqPart, hasRun := strings.Cut(v, "-")
	if !hasRun {
		// A bare seq, as ids were before they named their run: only
		// with the run in IncarnationHeader.
		runPart, seqPart = r.Header.Get(IncarnationHeader), v
	}
	seq, err := strconv.ParseUint(seqPart, 10, 64)
	if err != nil {
		return true, 0, "malformed"
	}
	if run, err := strconv.ParseUint(runPart, 10, 64); err != nil || run != inc {
		if hasRun && err != nil {
			return true, 0, "malformed"
		}
		return true, 0, "incarnation"
	}
	return true, seq, ""
}

// sseWriter frames Server-Sent Events. The first write error sticks and
// ends the stream.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	inc     uint64        // the run, in every event id
	timeout time.Duration // per write (Config.WatchWriteTimeout)
	buf     []byte
	err     error
	stalled bool // the stream ended because the client did not read
}

func (s *sseWriter) retry(d time.Duration) {
	s.buf = append(s.buf, "retry: "...)
	s.buf = strconv.AppendInt(s.buf, d.Milliseconds(), 10)
	s.buf = append(s.buf, '\n', '\n')
}

func (s *sseWriter) comment(text string) {
	s.buf = append(s.buf, ": "...)
	s.buf = append(s.buf, text...)
	s.buf = append(s.buf, '\n', '\n')
}

func (s *sseWriter) change(e regtype.Event) {
	s.event(e.Seq, string(e.Type), apitype.Event{Type: string(e.Type), Reason: string(e.Reason), Seq: e.Seq, Member: toMember(e.Member)})
}

// event appends one event; data is JSON (one line, so one data field).
func (s *sseWriter) event(id uint64, typ string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		s.err = err
		return
	}
	s.buf = append(s.buf, "id: "...)
	s.buf = strconv.AppendUint(s.buf, s.inc, 10)
	s.buf = append(s.buf, '-')
	s.buf = strconv.AppendUint(s.buf, id, 10)
	s.buf = append(s.buf, "\nevent: "...)
	s.buf = append(s.buf, typ...)
	s.buf = append(s.buf, "\ndata: "...)
	s.buf = append(s.buf, b...)
	s.buf = append(s.buf, '\n', '\n')
}

// flush writes what was framed and flushes it to the client, within the
// write timeout: a client that does not read is dropped rather than
// buffered for.
func (s *sseWriter) flush() error {
	if s.err != nil {
		return s.err
	}
	deadline := time.Now().Add(s.timeout)
	if err := s.rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.err = err
		return err
	}
	if len(s.buf) > 0 {
		if _, err := s.w.Write(s.buf); err != nil {
			s.fail(err, deadline)
			return err
		}
		s.buf = s.buf[:0]
	}
	if err := s.rc.Flush(); err != nil {
		s.fail(err, deadline)
	}
	return s.err
}

// fail records a write error; stalled if the write ran into its deadline
// (the client did not read), whatever error the writer then reports.
func (s *sseWriter) fail(err error, deadline time.Time) {
	s.err = err
	s.stalled = isTimeout(err) || !time.Now().Before(deadline)
}
