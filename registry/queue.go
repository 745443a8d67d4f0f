package registry

import "sync"

// blockEvents is how many events one block of a watch queue holds.
const blockEvents = 256

type eventBlock [blockEvents]Event

// blocks recycles queue blocks across all watches: a watch under a burst
// queues thousands of events, and a queue grown by append left its
// doubling copies (and, once drained, the queue itself) to the GC; with
// blocks, a burst's memory goes back to the pool as the consumer drains it.
var blocks = sync.Pool{New: func() any { return new(eventBlock) }}

// eventQueue is a FIFO of events in pooled blocks. The zero value is empty.
type eventQueue struct {
	bs []*eventBlock
	n  int // events held; they fill bs[0][0:] onwards
}

func (q *eventQueue) len() int { return q.n }

func (q *eventQueue) push(e Event) {
	i := q.n % blockEvents
	if i == 0 {
		q.bs = append(q.bs, blocks.Get().(*eventBlock))
	}
	q.bs[len(q.bs)-1][i] = e
	q.n++
}

// each calls fn on every event in order, stopping when fn returns false.
func (q *eventQueue) each(fn func(Event) bool) bool {
	for bi, b := range q.bs {
		n := min(q.n-bi*blockEvents, blockEvents)
		for i := range n {
			if !fn(b[i]) {
				return false
			}
		}
	}
	return true
}

// release empties the queue and returns its blocks, cleared, to the pool.
func (q *eventQueue) release() {
	for bi, b := range q.bs {
		clear(b[:min(q.n-bi*blockEvents, blockEvents)])
		blocks.Put(b)
	}
	clear(q.bs)
	q.bs, q.n = q.bs[:0], 0
}
