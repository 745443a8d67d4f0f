package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/roster-io/roster/apitype"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// EventType is the kind of a watch event.
type EventType string

const (
	// EventSnapshot is the first event of a fresh watch: Members is the
	// whole membership it follows.
	EventSnapshot EventType = "snapshot"
	EventJoin     EventType = "join"
	EventLeave    EventType = "leave"
	EventUpdate   EventType = "update"
	// EventResync replaces everything known with Members: the stream fell
	// behind, or a resume point was no longer available.
	EventResync EventType = "resync"
)

// Event is one watch event.
type Event struct {
	// ID is the SSE event id, "<incarnation>-<seq>": the node's run and
	// its per-scope sequence number. Pass it as lastEventID to resume
	// after this event; the node answers an id of another run (it
	// restarted) with a resync, never a replay of unrelated events.
	ID     string    `json:"-"`
	Type   EventType `json:"type"`
	Reason string    `json:"reason"` // joined, left, session-expired, owner-down, ...
	Seq    uint64    `json:"seq"`
	// Member is set for join, leave and update; Members for snapshot and
	// resync.
	Member  Member   `json:"member"`
	Members []Member `json:"members"`
	// Node and Incarnation name the node serving a snapshot or resync.
	Node        string `json:"node"`
	Incarnation uint64 `json:"incarnation,string"` // sent as a string; see Member
}

// UnmarshalJSON decodes an event's data, incarnations given as strings or
// numbers.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	raw := struct {
		*plain
		Incarnation apitype.Incarnation `json:"incarnation"`
	}{plain: (*plain)(e)}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	e.Incarnation = uint64(raw.Incarnation)
	return nil
}

// WatchState is a change of a watch's connection, reported to the
// function given with WithWatchState.
type WatchState struct {
	// Connected is false when the stream broke (the watch then retries
	// with backoff until it is re-established, or a retry is refused for
	// good), true when it is re-established.
	Connected bool
	// Err is why the stream broke (with Connected false).
	Err error
	// LastEventID is the id of the last event delivered: the watch
	// resumes after it (sent as Last-Event-ID). Empty if none was.
	LastEventID string
}

// WithWatchState calls f from a watch's goroutine each time its stream
// breaks and each time it is re-established, so that a program can say
// it is disconnected. f must return promptly: events wait meanwhile.
func WithWatchState(f func(WatchState)) Option { return func(c *Client) { c.watchState = f } }

// errStreamEnded is why a watch broke when the node closed its stream.
var errStreamEnded = errors.New("client: watch: the node ended the stream")

// Watch reconnect backoff.
const (
	watchRetryMin = 50 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// Watch is a stream of watch events. It reconnects by itself after network
// errors and server restarts, resuming with Last-Event-ID so that no event
// is lost or repeated (or, if the node cannot replay, with a resync).
type Watch struct {
	// C delivers the events; it is closed when the watch ends (Close,
	// its context, or a permanent error: see Err).
	C <-chan Event

	c       *Client
	path    string
	q       url.Values
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	lastID  string
	err     error
	reconns int
}

// Watch follows a scope (group and prefix empty), one group, or the groups
// whose names start with prefix. With lastEventID empty the first event is
// a snapshot; otherwise the stream resumes after that event. Errors the
// node answers to the first request (unknown scope, bad name,
// unauthorized) are returned at once; later failures are retried.
func (c *Client) Watch(ctx context.Context, scope, group, prefix, lastEventID string) (*Watch, error) {
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan Event)
	w := &Watch{C: out, c: c, path: scopePath(scope) + "/watch", q: q, cancel: cancel, done: make(chan struct{}), lastID: lastEventID}
	body, err := w.connect(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go w.run(ctx, body, out)
	return w, nil
}

// Close ends the watch and waits until C is closed.
func (w *Watch) Close() {
	w.cancel()
	<-w.done
}

// Err returns why the watch ended: nil after Close or the end of its
// context, else the permanent error (an *Error such as unauthorized, or
// ErrEventTooLarge).
func (w *Watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// LastEventID returns the id of the last event delivered on C.
func (w *Watch) LastEventID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastID
}

// Reconnects counts how often the stream was re-established.
func (w *Watch) Reconnects() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reconns
}

// connect opens the stream, resuming after the last event if any.
func (w *Watch) connect(ctx context.Context) (io.ReadCloser, error) {
	req, err := w.c.newRequest(ctx, http.MethodGet, w.path, w.q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	w.mu.Lock()
	if w.lastID != "" {
		// The id names the node's run: nothing else to send.
		req.Header.Set("Last-Event-ID", w.lastID)
	}
	w.mu.Unlock()
	resp, err := w.c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: watch: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp.Body, nil
}

// permanent reports whether a failed (re)connection must not be retried.
func permanent(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch {
	case e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests:
		return false
	case e.Status == http.StatusNotFound && e.Code == "":
		// A proxy or a node still starting; not the API's answer.
		return false
	}
	return e.Status/100 == 4
}

func (w *Watch) run(ctx context.Context, body io.ReadCloser, out chan<- Event) {
	defer close(w.done)
	defer close(out)
	delay := watchRetryMin
	for {
		delivered, broke, err := w.read(ctx, body, out)
		body.Close()
		if ctx.Err() != nil {
			return
		}
		if err != nil { // reconnecting would only fail the same way
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		if delivered {
			delay = watchRetryMin
		}
		w.report(WatchState{Err: broke})
		for {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, watchRetryMax)
			var err error
			body, err = w.connect(ctx)
			if err == nil {
				w.mu.Lock()
				w.reconns++
				w.mu.Unlock()
				w.report(WatchState{Connected: true})
				break
			}
			if ctx.Err() != nil {
				return
			}
			if permanent(err) {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
		}
	}
}

// report passes a change of the connection to the client's WatchState
// function, if any.
func (w *Watch) report(s WatchState) {
	if w.c.watchState == nil {
		return
	}
	s.LastEventID = w.LastEventID()
	w.c.watchState(s)
}

// read parses one SSE stream and delivers its events until it ends. It
// reports whether any event was delivered, why the stream broke, and
// ErrEventTooLarge for an event over the client's bound (its lines are not
// kept beyond it).
func (w *Watch) read(ctx context.Context, body io.Reader, out chan<- Event) (delivered bool, broke, err error) {
	br := bufio.NewReaderSize(body, 64<<10)
	var id, typ string
	var data strings.Builder
	var buf []byte
	for {
		buf = buf[:0]
		for {
			chunk, err := br.ReadSlice('\n')
			if len(buf)+len(chunk)+data.Len() > w.c.maxLine {
				return delivered, nil, fmt.Errorf("client: watch: %w (limit %d bytes)", ErrEventTooLarge, w.c.maxLine)
			}
			buf = append(buf, chunk...)
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				// A partial last event is dropped, as SSE says.
				if errors.Is(err, io.EOF) {
					return delivered, errStreamEnded, nil
				}
				return delivered, fmt.Errorf("client: watch: %w", err), nil
			}
		}
		line := strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
		if line == "" {
			if data.Len() > 0 {
				var e Event
				if err := json.Unmarshal([]byte(data.String()), &e); err != nil {
					// Not our protocol: reconnect.
					return delivered, fmt.Errorf("client: watch: not a roster event: %w", err), nil
				}
				e.ID = id
				if typ != "" {
					e.Type = EventType(typ)
				}
				if id != "" {
					// Recorded first: once sent, a consumer may ask for it.
					w.mu.Lock()
					w.lastID = id
					w.mu.Unlock()
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return delivered, nil, nil
				}
				delivered = true
			}
			id, typ = "", ""
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment (heartbeat)
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			typ = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
}
