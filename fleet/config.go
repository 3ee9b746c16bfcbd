package fleet

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Config is the fleet sync's configuration: the store the nodes share and
// which balancers take part. Exactly one of Redis and Storage is set.
type Config struct {
	// Redis shares the state through a Redis server (standalone, Sentinel
	// or Cluster): changes are pushed to every node at once.
	Redis *RedisConfig `json:"redis,omitempty"`

	// Storage shares the state through Caddy's configured storage (the
	// `storage` option: file_system on a shared mount, or any storage
	// module the nodes share), polled: for fleets that have no Redis.
	Storage *StorageConfig `json:"storage,omitempty"`

	// KeyPrefix starts every key the fleet writes, so that two fleets can
	// share one Redis or one storage. Default "caddy-balancer".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// Balancers lists the balancers that take part (names without
	// balancer://). Default: all.
	Balancers []string `json:"balancers,omitempty"`

	// Node is this node's ID in the fleet, shown in the JSON API and used to
	// order concurrent writes. Default: Caddy's instance ID. Set it when the
	// nodes share Caddy's data directory (they would share the instance ID).
	Node string `json:"node,omitempty"`

	// ResyncInterval is how often the node reads the whole shared state
	// again, besides the pushed changes, to make up for any it missed.
	// Default 30s; 0 uses the default.
	ResyncInterval caddy.Duration `json:"resync_interval,omitempty"`
}

// RedisConfig addresses the Redis server.
type RedisConfig struct {
	// Addresses are host:port of the server, of the Sentinels (with
	// MasterName), or of Cluster nodes (two or more, or Cluster set).
	Addresses []string `json:"addresses"`
	// Username and Password authenticate (Redis 6 ACL, or requirepass with
	// the password only). Placeholders such as {env.REDIS_PASSWORD} are
	// replaced when the config loads.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB is the database number (standalone and Sentinel only).
	DB int `json:"db,omitempty"`
	// MasterName is the Sentinel master's name: Addresses are then
	// Sentinels.
	MasterName string `json:"master_name,omitempty"`
	// SentinelPassword authenticates to the Sentinels, if they need it.
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// Cluster uses Redis Cluster even with a single address (a cluster's
	// configuration endpoint).
	Cluster bool `json:"cluster,omitempty"`
	// TLS connects with TLS.
	TLS *RedisTLS `json:"tls,omitempty"`
	// Timeout bounds each command (dial, read, write). Default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// RedisTLS is the TLS of the connection to Redis.
type RedisTLS struct {
	// ServerName is the name the server's certificate must have; default
	// the host of the address.
	ServerName string `json:"server_name,omitempty"`
	// InsecureSkipVerify does not verify the server's certificate (tests
	// only).
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// StorageConfig is the storage fallback's polling.
type StorageConfig struct {
	// PollInterval is how often each node reads the others' state. A change
	// reaches every node within about two intervals. Default 2s.
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`
}

// Defaults.
const (
	DefaultKeyPrefix      = "caddy-balancer"
	DefaultResyncInterval = 30 * time.Second
	DefaultPollInterval   = 2 * time.Second
	DefaultRedisTimeout   = 2 * time.Second
)

// Validate checks the configuration; messages name the field.
func (c *Config) Validate() error {
	switch {
	case c.Redis == nil && c.Storage == nil:
		return fmt.Errorf("fleet: set redis or storage")
	case c.Redis != nil && c.Storage != nil:
		return fmt.Errorf("fleet: set redis or storage, not both")
	}
	if c.Redis != nil {
		r := c.Redis
		if len(r.Addresses) == 0 {
			return fmt.Errorf("fleet: redis: addresses: want at least one host:port")
		}
		for _, a := range r.Addresses {
			if i := strings.LastIndexByte(a, ':'); i <= 0 || i == len(a)-1 {
				return fmt.Errorf("fleet: redis: address %q: want host:port", a)
			}
		}
		if r.DB < 0 {
			return fmt.Errorf("fleet: redis: db must be 0 or more, not %d", r.DB)
		}
		if r.Cluster && r.MasterName != "" {
			return fmt.Errorf("fleet: redis: cluster and master_name (Sentinel) exclude each other")
		}
		if (r.Cluster || len(r.Addresses) > 1) && r.MasterName == "" && r.DB != 0 {
			return fmt.Errorf("fleet: redis: db is not available with Redis Cluster")
		}
		if r.Timeout < 0 {
			return fmt.Errorf("fleet: redis: timeout must be positive")
		}
	}
	if c.Storage != nil && c.Storage.PollInterval < 0 {
		return fmt.Errorf("fleet: storage: poll_interval must be positive")
	}
	if c.ResyncInterval < 0 {
		return fmt.Errorf("fleet: resync_interval must be positive")
	}
	if strings.ContainsAny(c.KeyPrefix, " \t\r\n/") {
		return fmt.Errorf("fleet: key_prefix %q: no white space or '/'", c.KeyPrefix)
	}
	if strings.ContainsAny(c.Node, " \t\r\n/|") {
		return fmt.Errorf("fleet: node %q: no white space, '/' or '|'", c.Node)
	}
	return nil
}

func (c *Config) prefix() string {
	if c.KeyPrefix == "" {
		return DefaultKeyPrefix
	}
	return c.KeyPrefix
}

func (c *Config) resync() time.Duration {
	if c.ResyncInterval <= 0 {
		return DefaultResyncInterval
	}
	return time.Duration(c.ResyncInterval)
}

// tlsConfig is the TLS configuration of the Redis connection, nil for none.
func (r *RedisConfig) tlsConfig() *tls.Config {
	if r.TLS == nil {
		return nil
	}
	return &tls.Config{ServerName: r.TLS.ServerName, InsecureSkipVerify: r.TLS.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec
}
