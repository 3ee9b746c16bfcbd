package fleet

import (
	"sync"
	"time"
)

// clock is a hybrid logical clock (Kulkarni et al., "Logical Physical
// Clocks"): stamps follow wall time, never go backwards, and a write made
// after seeing a peer's stamp is stamped later than it, even if this node's
// wall clock is behind. Concurrent writes of one field on two nodes are then
// ordered by stamp, and equal stamps by node ID: every node picks the same
// winner.
type clock struct {
	mu   sync.Mutex
	now  func() time.Time
	last Stamp
}

// Now returns a stamp later than every stamp returned or observed before.
func (c *clock) Now() Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.now().UnixMilli()
	if wall > c.last.Wall {
		c.last = Stamp{Wall: wall}
	} else {
		c.last.Logical++
	}
	return c.last
}

// Observe moves the clock past a stamp seen from a peer.
func (c *clock) Observe(s Stamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.Compare(c.last) > 0 {
		c.last = s
	}
}
