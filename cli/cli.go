// Package cli is the `caddy balancer` command of caddy-balancer: the
// balancers of a running Caddy, shown and changed from the command line
// through the JSON admin API (package api) on Caddy's admin endpoint, as
// `caddy reload` talks to it. The plugin registers it (app.go), so a Caddy
// built with the plugin has it.
//
//	caddy balancer status [<balancer>] [--json]
//	caddy balancer set <balancer> <member> <+N-D...|key=value>...
//	caddy balancer drain <balancer> <member> [--wait <duration>]
//	caddy balancer enable|disable <balancer> <member>
//	caddy balancer add <balancer> <url> [key=value...]
//	caddy balancer remove <balancer> <member>
//
// A member is named by its route or its URL. The admin endpoint is
// --address, else the one in --config (with --adapter), else Caddy's default
// (localhost:2019, or $CADDY_ADMIN).
package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/lbset/caddy-balancer/api"
	"github.com/lbset/caddy-balancer/balancer"
)

// Exit codes of `caddy balancer`.
const (
	// ExitOK: done.
	ExitOK = 0
	// ExitError: the admin endpoint could not be reached, or refused the
	// request (its error is printed).
	ExitError = 1
	// ExitUsage: the command line is wrong.
	ExitUsage = 2
	// ExitNotDrained: drain --wait passed with requests still in flight on
	// the member (or its N flag was cleared meanwhile).
	ExitNotDrained = 3
)

const long = `
Shows and changes the balancers (caddy-balancer) of a running Caddy through
the JSON API on its admin endpoint.

  status [<balancer>]                 balancers and members as a table
  set <balancer> <member> <change>... change a member: a status change in
                                      httpd's syntax (+N, -D, +H-R ...) and/or
                                      key=value (loadfactor, lbset, route,
                                      redirect, hcmethod, hcuri, hcinterval,
                                      hcpasses, hcfails, hcexpr)
  drain <balancer> <member>           set N (no new non-sticky request); with
        [--wait <duration>]           --wait, wait until its requests in
                                      flight are over
  enable <balancer> <member>          clear D, N and S: it takes requests again
  disable <balancer> <member>         set D
  add <balancer> <url> [key=value...] add a member at run time (within growth);
                                      it starts disabled unless status=-D
  remove <balancer> <member>          remove a member added at run time

A member is its route or its URL. --json prints the API's JSON instead of
text. The admin endpoint is --address, else the one configured in --config,
else localhost:2019 (or $CADDY_ADMIN).

Exit status: 0 done, 1 error (the API's message is printed), 2 bad command
line, 3 drain --wait passed with requests still in flight.
`

// Command is the `caddy balancer` command, for caddycmd.RegisterCommand.
func Command() caddycmd.Command {
	return caddycmd.Command{
		Name:  "balancer",
		Usage: "status|set|drain|enable|disable|add|remove [<args>]",
		Short: "Shows and changes the balancers of a running Caddy (caddy-balancer)",
		Long:  long,
		CobraFunc: func(cmd *cobra.Command) {
			pf := cmd.PersistentFlags()
			pf.String("address", "", "Address of the administration endpoint (default: from --config, else localhost:2019)")
			pf.StringP("config", "c", "", "Configuration file to read the admin endpoint's address from")
			pf.StringP("adapter", "a", "", "Name of the config adapter for --config")
			pf.Bool("json", false, "Print the API's JSON answer")
			cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usage(c, "%v", err) })
			cmd.Args = cobra.ArbitraryArgs
			cmd.RunE = func(c *cobra.Command, args []string) error {
				if len(args) == 0 {
					return usage(c, "name a subcommand: status, set, drain, enable, disable, add or remove")
				}
				return usage(c, "unknown subcommand %q (status, set, drain, enable, disable, add or remove)", args[0])
			}
			for _, sub := range subcommands() {
				cmd.AddCommand(sub)
			}
		},
	}
}

func subcommands() []*cobra.Command {
	status := &cobra.Command{
		Use:   "status [<balancer>]",
		Short: "Lists balancers and members",
		Args:  argsBetween(0, 1, "[<balancer>]"),
		RunE:  run(cmdStatus),
	}
	set := &cobra.Command{
		Use:   "set <balancer> <member> <+N-D...|key=value>...",
		Short: "Changes a member's flags (httpd's status syntax) or parameters",
		Long: `Changes a member's flags, in httpd's status syntax (+N, -D, +H-R ...), and/or its
parameters as key=value. A change that starts with '-' is not a flag: set takes
its flags in their long form only (--address, --config, --adapter, --json).`,
		// "-D" is a status change, not a flag: set reads its flags itself.
		DisableFlagParsing: true,
		RunE:               run(cmdSet),
	}
	drain := &cobra.Command{
		Use:   "drain <balancer> <member> [--wait <duration>]",
		Short: "Drains a member (N); with --wait, until its requests in flight are over",
		Args:  argsBetween(2, 2, "<balancer> <member>"),
		RunE:  run(cmdDrain),
	}
	drain.Flags().String("wait", "", "How long to wait for the member to empty: a duration (30s, 2m) or seconds, up to 1h")
	enable := &cobra.Command{
		Use:   "enable <balancer> <member>",
		Short: "Clears D, N and S: the member takes requests again",
		Args:  argsBetween(2, 2, "<balancer> <member>"),
		RunE:  run(func(c *client, args []string, out io.Writer) (int, error) { return c.setStatus(args, "-D-N-S", out) }),
	}
	disable := &cobra.Command{
		Use:   "disable <balancer> <member>",
		Short: "Sets D: the member takes no request",
		Args:  argsBetween(2, 2, "<balancer> <member>"),
		RunE:  run(func(c *client, args []string, out io.Writer) (int, error) { return c.setStatus(args, "+D", out) }),
	}
	add := &cobra.Command{
		Use:   "add <balancer> <url> [key=value...]",
		Short: "Adds a member at run time (within the balancer's growth)",
		Args:  argsBetween(2, 64, "<balancer> <url> [key=value...]"),
		RunE:  run(cmdAdd),
	}
	remove := &cobra.Command{
		Use:   "remove <balancer> <member>",
		Short: "Removes a member added at run time",
		Args:  argsBetween(2, 2, "<balancer> <member>"),
		RunE:  run(cmdRemove),
	}
	return []*cobra.Command{status, set, drain, enable, disable, add, remove}
}

// errReported is returned to cobra for exit status 1; the message was
// printed already.
var errReported = errors.New("")

// exit ends a subcommand with its exit status: the message, if any, is
// printed as "caddy balancer: <message>" on standard error, and the status
// reaches Caddy's main through the error cobra returns.
func exit(c *cobra.Command, code int, err error) error {
	c.SilenceErrors = true
	c.SilenceUsage = true
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "caddy balancer: %v\n", err)
	}
	switch code {
	case ExitOK:
		return nil
	case ExitError:
		return errReported
	}
	// caddycmd turns a status above 1 into the process's exit status.
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return code, nil })(c, nil)
}

// usage ends a subcommand with ExitUsage.
func usage(c *cobra.Command, format string, args ...any) error {
	return exit(c, ExitUsage, fmt.Errorf(format+"\nusage: %s (see caddy help balancer)", append(args, c.UseLine())...))
}

func argsBetween(lo, hi int, want string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usage(c, "want %s, got %d arguments", want, len(args))
		}
		return nil
	}
}

// options are the flags every subcommand takes.
type options struct {
	address, config, adapter string
	json                     bool
}

// longFlags reads the flags of a subcommand that parses its own (set): only
// the long forms, --name value or --name=value, so that "-D" stays an
// argument. It reports whether help was asked for.
func longFlags(args []string) (rest []string, o options, help bool, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i+1:]...), o, false, nil
		}
		if !strings.HasPrefix(a, "--") {
			rest = append(rest, a)
			continue
		}
		name, val, hasVal := strings.Cut(a[2:], "=")
		switch name {
		case "help":
			return nil, o, true, nil
		case "json":
			o.json = !hasVal || val == "true"
			continue
		case "address", "config", "adapter":
		default:
			return nil, o, false, fmt.Errorf("unknown flag: --%s", name)
		}
		if !hasVal {
			if i+1 == len(args) {
				return nil, o, false, fmt.Errorf("flag needs an argument: --%s", name)
			}
			i++
			val = args[i]
		}
		switch name {
		case "address":
			o.address = val
		case "config":
			o.config = val
		case "adapter":
			o.adapter = val
		}
	}
	return rest, o, false, nil
}

// run wraps a subcommand: it finds the admin endpoint and maps the result
// to the exit status.
func run(f func(c *client, args []string, out io.Writer) (int, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		var o options
		if cmd.DisableFlagParsing {
			var help bool
			var err error
			if args, o, help, err = longFlags(args); err != nil {
				return usage(cmd, "%v", err)
			}
			if help {
				return exit(cmd, ExitOK, cmd.Help())
			}
			if len(args) < 3 {
				return usage(cmd, "want <balancer> <member> <+N-D...|key=value>..., got %d arguments", len(args))
			}
		} else {
			fl := caddycmd.Flags{FlagSet: cmd.Flags()}
			o = options{address: fl.String("address"), config: fl.String("config"), adapter: fl.String("adapter"), json: fl.Bool("json")}
		}
		addr, err := caddycmd.DetermineAdminAPIAddress(o.address, nil, o.config, o.adapter)
		if err != nil {
			return exit(cmd, ExitError, fmt.Errorf("finding the admin endpoint: %v", err))
		}
		c, err := newClient(addr)
		if err != nil {
			return exit(cmd, ExitUsage, err)
		}
		c.json = o.json
		c.cmd = cmd
		code, err := f(c, args, cmd.OutOrStdout())
		return exit(cmd, code, err)
	}
}

// memberPath is the API path of a member, by route or URL.
func memberPath(bal, member string) string {
	return api.Prefix + "/" + url.PathEscape(bal) + "/members/" + url.PathEscape(member)
}

func cmdStatus(c *client, args []string, out io.Writer) (int, error) {
	var list []api.Balancer
	if len(args) == 1 {
		var b api.Balancer
		if err := c.do("GET", api.Prefix+"/"+url.PathEscape(args[0]), nil, &b); err != nil {
			return ExitError, err
		}
		list = []api.Balancer{b}
	} else if err := c.do("GET", api.Prefix, nil, &list); err != nil {
		return ExitError, err
	}
	if c.json {
		if len(args) == 1 {
			return ExitOK, printJSON(out, list[0])
		}
		return ExitOK, printJSON(out, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(out, "no balancers")
		return ExitOK, nil
	}
	for i, b := range list {
		if i > 0 {
			fmt.Fprintln(out)
		}
		writeBalancer(out, b)
	}
	return ExitOK, nil
}

// memberKeys are the key=value parameters of set and add, with the kind of
// JSON value each is sent as.
var memberKeys = map[string]string{
	"loadfactor": "number", "lbset": "integer", "route": "string", "redirect": "string",
	"status": "string", "hcmethod": "string", "hcuri": "string", "hcinterval": "string",
	"hcpasses": "integer", "hcfails": "integer", "hcexpr": "string",
}

// memberFields reads key=value arguments (and, with statusArgs, bare status
// changes such as +N-D) into the JSON body of a member change.
func memberFields(args []string, statusArgs bool) (map[string]any, error) {
	body := map[string]any{}
	var status strings.Builder
	for _, a := range args {
		key, val, ok := strings.Cut(a, "=")
		if !ok {
			if !statusArgs {
				return nil, fmt.Errorf("%q is not key=value", a)
			}
			status.WriteString(a)
			continue
		}
		key = strings.ToLower(key)
		kind, known := memberKeys[key]
		if !known {
			names := make([]string, 0, len(memberKeys))
			for k := range memberKeys {
				names = append(names, k)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("unknown member parameter %q (%s)", key, strings.Join(names, ", "))
		}
		switch kind {
		case "number":
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return nil, balancer.Invalid(key, val)
			}
			body[key] = f
		case "integer":
			n, err := strconv.Atoi(val)
			if err != nil {
				return nil, balancer.Invalid(key, val)
			}
			body[key] = n
		default:
			if key == "status" {
				status.WriteString(val)
				continue
			}
			body[key] = val
		}
	}
	if status.Len() > 0 {
		body["status"] = status.String()
	}
	return body, nil
}

func cmdSet(c *client, args []string, out io.Writer) (int, error) {
	body, err := memberFields(args[2:], true)
	if err != nil {
		return ExitUsage, err
	}
	return c.patchMember(args[0], args[1], body, out)
}

func (c *client) setStatus(args []string, change string, out io.Writer) (int, error) {
	return c.patchMember(args[0], args[1], map[string]any{"status": change}, out)
}

func (c *client) patchMember(bal, member string, body map[string]any, out io.Writer) (int, error) {
	var m api.Member
	if err := c.do("PATCH", memberPath(bal, member), body, &m); err != nil {
		return ExitError, err
	}
	if c.json {
		return ExitOK, printJSON(out, m)
	}
	writeMembers(out, []api.Member{m})
	return ExitOK, nil
}

func cmdDrain(c *client, args []string, out io.Writer) (int, error) {
	path := memberPath(args[0], args[1]) + "/drain"
	var wait time.Duration
	if w := c.cmd.Flags().Lookup("wait").Value.String(); w != "" {
		d, err := api.DrainWait(w)
		if err != nil {
			return ExitUsage, err
		}
		wait = d
		path += "?wait=" + url.QueryEscape(w)
	}
	var d api.Drain
	status, err := c.call("POST", path, nil, &d, wait)
	if err != nil && status != 409 {
		return ExitError, err
	}
	if c.json {
		if perr := printJSON(out, d); perr != nil {
			return ExitError, perr
		}
	}
	switch status {
	case 200:
		if !c.json {
			fmt.Fprintf(out, "%s drained: no request in flight (waited %s)\n", d.Member, d.Waited)
		}
		return ExitOK, nil
	case 202:
		if !c.json {
			fmt.Fprintf(out, "%s draining: %d requests in flight\n", d.Member, d.InFlight)
		}
		return ExitOK, nil
	}
	return ExitNotDrained, errors.New(d.Error)
}

func cmdAdd(c *client, args []string, out io.Writer) (int, error) {
	body, err := memberFields(args[2:], false)
	if err != nil {
		return ExitUsage, err
	}
	body["url"] = args[1]
	var m api.Member
	if err := c.do("POST", api.Prefix+"/"+url.PathEscape(args[0])+"/members", body, &m); err != nil {
		return ExitError, err
	}
	if c.json {
		return ExitOK, printJSON(out, m)
	}
	writeMembers(out, []api.Member{m})
	if strings.Contains(m.Flags, "D") {
		fmt.Fprintf(out, "added disabled; to enable it: caddy balancer enable %s %s\n", args[0], m.Name)
	}
	return ExitOK, nil
}

func cmdRemove(c *client, args []string, out io.Writer) (int, error) {
	if err := c.do("DELETE", memberPath(args[0], args[1]), nil, nil); err != nil {
		return ExitError, err
	}
	if !c.json {
		fmt.Fprintf(out, "removed %s from %s\n", args[1], args[0])
	}
	return ExitOK, nil
}
