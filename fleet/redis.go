package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store is where the nodes of a fleet share their records.
type Store interface {
	// Name is "redis" or "storage".
	Name() string
	// Write stores each record unless the store holds a newer one for its
	// key, and tells the other nodes.
	Write(ctx context.Context, rs []Record) error
	// Read returns every record stored for the balancers.
	Read(ctx context.Context, balancers []string) ([]Record, error)
	// Watch runs until ctx is done. It calls changed with records other
	// nodes wrote, resync when the node must read everything again (it may
	// have missed changes: at the start, after a reconnection), and state
	// with nil when the store answers again, or with the error that made it
	// unreachable.
	Watch(ctx context.Context, changed func([]Record), resync func(), state func(error))
	// Report stores this node's report (which members drain here and their
	// requests in flight), replacing its previous one.
	Report(ctx context.Context, r NodeReport) error
	// Reports returns the latest report of every node.
	Reports(ctx context.Context) ([]NodeReport, error)
	// Close releases the store's connections.
	Close() error
}

// redisStore shares records through Redis: one hash per balancer
// (<prefix>:balancer:<name>, a field per record key) holds the fleet's
// state, and every write is published on <prefix>:changes. A Lua script
// writes a record only if it is newer than the stored one and publishes it
// in the same step, so that the store converges to the newest write of each
// field whatever the order writes arrive in.
//
// Why pub/sub: the hashes are the state (and the persistence), so the push
// only needs to ring the bell; a node that was away reads the hashes again
// when it resubscribes, so a missed message is harmless. Streams would keep
// a second copy of the state as a log to trim; keyspace notifications need
// notify-keyspace-events on the server, which managed Redis services often
// refuse.
type redisStore struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
}

// writeScript stores ARGV[2] (a record as encode writes it) in hash KEYS[1]
// at field ARGV[1] unless the stored value's order (its prefix up to '|') is
// ARGV[3] or later, and publishes it on channel ARGV[4]. It returns 1 if it
// wrote.
var writeScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
	local sep = string.find(cur, '|', 1, true)
	if sep and string.sub(cur, 1, sep - 1) >= ARGV[3] then
		return 0
	end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
`)

func newRedisStore(c *RedisConfig, prefix string) *redisStore {
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = DefaultRedisTimeout
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:            c.Addresses,
		Username:         c.Username,
		Password:         c.Password,
		DB:               c.DB,
		MasterName:       c.MasterName,
		SentinelPassword: c.SentinelPassword,
		IsClusterMode:    c.Cluster,
		TLSConfig:        c.tlsConfig(),
		DialTimeout:      timeout,
		ReadTimeout:      timeout,
		WriteTimeout:     timeout,
		// Fail fast: a node without its store serves on (fail static) and
		// tries again; it must not queue behind retries.
		MaxRetries: 1,
	})
	return &redisStore{client: client, prefix: prefix, timeout: timeout}
}

func (s *redisStore) Name() string { return "redis" }

func (s *redisStore) key(bal string) string { return s.prefix + ":balancer:" + bal }

func (s *redisStore) channel() string { return s.prefix + ":changes" }

func (s *redisStore) Write(ctx context.Context, rs []Record) error {
	for _, r := range rs {
		v, err := encode(r)
		if err != nil {
			return err
		}
		if err := writeScript.Run(ctx, s.client, []string{s.key(r.Balancer)}, r.field(), v, r.order(), s.channel()).Err(); err != nil {
			return err
		}
	}
	return nil
}

func (s *redisStore) Read(ctx context.Context, balancers []string) ([]Record, error) {
	var out []Record
	for _, b := range balancers {
		m, err := s.client.HGetAll(ctx, s.key(b)).Result()
		if err != nil {
			return nil, err
		}
		for _, v := range m {
			r, err := decode(v)
			if err != nil || r.Balancer != b {
				continue // not ours to apply; the node logs what it skips
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *redisStore) Watch(ctx context.Context, changed func([]Record), resync func(), state func(error)) {
	ps := s.client.Subscribe(ctx, s.channel())
	// Receive blocks on the connection: closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	backoff := 100 * time.Millisecond
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			state(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				backoff = 100 * time.Millisecond
				state(nil)
				resync()
			}
		case *redis.Message:
			if r, err := decode(m.Payload); err == nil {
				changed([]Record{r})
			}
		}
	}
}

func (s *redisStore) reportsKey() string { return s.prefix + ":nodes" }

func (s *redisStore) Report(ctx context.Context, r NodeReport) error {
	js, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.client.HSet(ctx, s.reportsKey(), r.Node, js).Err()
}

func (s *redisStore) Reports(ctx context.Context) ([]NodeReport, error) {
	m, err := s.client.HGetAll(ctx, s.reportsKey()).Result()
	if err != nil {
		return nil, err
	}
	var out []NodeReport
	for node, v := range m {
		var r NodeReport
		if json.Unmarshal([]byte(v), &r) == nil && r.Node == node {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *redisStore) Close() error {
	err := s.client.Close()
	if errors.Is(err, redis.ErrClosed) {
		return nil
	}
	return err
}
