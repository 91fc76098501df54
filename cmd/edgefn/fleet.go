package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/tlsclient"
	"github.com/edgefn/edgefn/sync/fleet"
)

func fleetCommand() *cli.Command {
	return &cli.Command{
		Name:  "fleet",
		Usage: "roll functions out to many gateways through the cloud MQTT broker (docs/fleet.md)",
		Subcommands: []*cli.Command{
			{
				Name:      "deploy",
				Usage:     "sign and publish a function into a group's desired state",
				ArgsUsage: "MANIFEST",
				Description: "Uploads the module as retained chunks under its sha256, then writes the group's\n" +
					"document (its current functions plus this one), signed with --key. With --watch the\n" +
					"command waits that long for every online gateway of the group to report the new\n" +
					"module active, printing a line per gateway, and exits 1 if one refused it or did not\n" +
					"report in time.",
				Flags: fleetFlags(jsonFlag(),
					&cli.StringFlag{Name: "group", Usage: "the group whose document is written"},
					&cli.StringFlag{Name: "key", Usage: "ed25519 private key file (edgefn keygen)"},
					&cli.StringFlag{Name: "canary", Usage: "N or P%: gateways to try first (not implemented yet)"},
					&cli.DurationFlag{Name: "watch", Usage: "wait this long for the group's gateways to report"},
					&cli.StringFlag{Name: "max-error-rate", Usage: "canary failure threshold, P% (not implemented yet)"},
					&cli.IntFlag{Name: "chunk-size", Value: fleet.DefaultChunkSize, Usage: "bytes per retained blob chunk"},
				),
				Action: withArgs(1, 1, "one manifest file", fleetDeployAction),
			},
			{
				Name:   "ls",
				Usage:  "one row per gateway, from the retained status documents",
				Flags:  fleetFlags(jsonFlag(), &cli.StringFlag{Name: "group", Usage: "only the gateways of this group"}),
				Action: fleetLsAction,
			},
		},
	}
}

// fleetFlags are the broker flags of every fleet subcommand.
func fleetFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "broker", EnvVars: []string{"EDGEFN_FLEET_BROKER"}, Usage: "cloud broker URL (tcp://, mqtts://...)"},
		&cli.StringFlag{Name: "topic-prefix", Value: fleet.DefaultPrefix, Usage: "topic prefix of the fleet"},
		&cli.StringFlag{Name: "username", EnvVars: []string{"EDGEFN_FLEET_USERNAME"}},
		&cli.StringFlag{Name: "password", EnvVars: []string{"EDGEFN_FLEET_PASSWORD"}},
		&cli.StringFlag{Name: "ca", Usage: "CA file to trust for the broker"},
		&cli.StringFlag{Name: "cert", Usage: "client certificate (mTLS)"},
		&cli.StringFlag{Name: "key-file", Usage: "client certificate's key (mTLS)"},
	}, extra...)
}

func fleetConnect(c *cli.Context) (*fleet.Conn, error) {
	// Resubscribe: --watch follows the gateways across a broker restart.
	d := fleet.Dial{Broker: c.String("broker"), Username: c.String("username"), Password: c.String("password"), Resubscribe: true}
	if tc := (tlsclient.Config{CAFile: c.String("ca"), CertFile: c.String("cert"), KeyFile: c.String("key-file")}); tc.IsSet() {
		t, err := tc.Load()
		if err != nil {
			return nil, usagef("fleet: %v", err)
		}
		d.TLS = t
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	return fleet.Connect(ctx, d, fleet.Topics{Prefix: c.String("topic-prefix")})
}

// fleetResult is what fleet deploy --json prints.
type fleetResult struct {
	Function  string            `json:"function"`
	Group     string            `json:"group"`
	Module    string            `json:"module_sha256"`
	Sequence  uint64            `json:"sequence"`
	Converged []string          `json:"converged"`
	Failed    map[string]string `json:"failed,omitempty"`
	Pending   []string          `json:"pending,omitempty"`
	Seconds   float64           `json:"seconds"`
}

func fleetDeployAction(c *cli.Context) error {
	if c.String("canary") != "" || c.String("max-error-rate") != "" {
		return usagef("fleet deploy: --canary and --max-error-rate are not implemented yet")
	}
	for _, f := range []string{"broker", "group", "key"} {
		if c.String(f) == "" {
			return usagef("fleet deploy: --%s is required", f)
		}
	}
	group := c.String("group")
	if err := fleet.CheckName(group); err != nil {
		return usagef("fleet deploy: --group %v", err)
	}
	path := c.Args().First()
	manifest, err := os.ReadFile(path)
	if err != nil {
		return usagef("fleet deploy: %v", err)
	}
	name := manifestName(path, manifest)
	if name == "" {
		return usagef("fleet deploy: %s: no function name (edgefn deploy to a single agent lists the manifest's problems)", path)
	}
	priv, err := readPrivateKey(c.String("key"))
	if err != nil {
		return usagef("fleet deploy: --key: %v", err)
	}
	_, wasm, err := readModule(path, manifest)
	if err != nil {
		return err
	}
	start := time.Now()
	cn, err := fleetConnect(c)
	if err != nil {
		return err
	}
	defer cn.Close()
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
	defer cancel()
	mod, err := cn.PublishBlob(ctx, wasm, c.Int("chunk-size"))
	if err != nil {
		return err
	}
	doc, err := currentDoc(ctx, cn, group)
	if err != nil {
		return err
	}
	entry := fleet.Function{Name: name, Manifest: manifest, Module: mod,
		Activation: activation.Sign(activation.New(activation.Deploy, name, manifest, wasm, nextSequence(0)), priv)}
	doc.Functions = slices.DeleteFunc(doc.Functions, func(f fleet.Function) bool { return f.Name == name })
	doc.Functions = append(doc.Functions, entry)
	// The gateways online before the document are awaited even if they
	// drop offline for a moment during the watch.
	var online []string
	if c.Duration("watch") > 0 {
		sts, err := statuses(ctx, cn)
		if err != nil {
			return err
		}
		for _, st := range sts {
			if st.Online && slices.Contains(st.Groups, group) {
				online = append(online, st.Gateway)
			}
		}
	}
	if err := writeDoc(ctx, cn, group, &doc, priv); err != nil {
		return err
	}
	res := fleetResult{Function: name, Group: group, Module: mod.SHA256, Sequence: doc.Sequence, Converged: []string{}}
	fmt.Fprintf(c.App.ErrWriter, "published %s (module %.12s, %d chunks) in group %s, document sequence %d\n", name, mod.SHA256, mod.Chunks(), group, doc.Sequence)
	if w := c.Duration("watch"); w > 0 {
		watchCtx, cancel := context.WithTimeout(c.Context, w)
		defer cancel()
		res.Converged, res.Failed, res.Pending = watchGroup(watchCtx, cn, group, name, mod.SHA256, online, func(gw, what string) {
			fmt.Fprintf(c.App.ErrWriter, "%s: %s\n", gw, what)
		})
	}
	res.Seconds = time.Since(start).Seconds()
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else if c.Duration("watch") > 0 {
		fmt.Fprintf(c.App.Writer, "%s: %d gateways converged, %d failed, %d pending in %.1fs\n", name, len(res.Converged), len(res.Failed), len(res.Pending), res.Seconds)
	}
	if len(res.Failed) > 0 || len(res.Pending) > 0 {
		for gw, why := range res.Failed {
			fmt.Fprintf(c.App.ErrWriter, "edgefn: %s: %s\n", gw, why)
		}
		fmt.Fprintf(c.App.ErrWriter, "edgefn: fleet deploy: %d gateways failed, %d did not report: %s\n", len(res.Failed), len(res.Pending), strings.Join(res.Pending, ", "))
		return failedError{}
	}
	return nil
}

// currentDoc is the group's current document (unverified: the agents
// verify), or an empty one.
func currentDoc(ctx context.Context, cn *fleet.Conn, group string) (fleet.Document, error) {
	topic := cn.Topics().Desired(fleet.KindGroup, group)
	got, err := cn.Retained(ctx, topic)
	if err != nil {
		return fleet.Document{}, err
	}
	d := fleet.Document{Target: fleet.Target(fleet.KindGroup, group)}
	if p, ok := got[topic]; ok {
		if d, err = fleet.Peek(p); err != nil {
			return fleet.Document{}, fmt.Errorf("group %s: current document: %w", group, err)
		}
	}
	return d, nil
}

func writeDoc(ctx context.Context, cn *fleet.Conn, group string, d *fleet.Document, priv ed25519.PrivateKey) error {
	d.Target = fleet.Target(fleet.KindGroup, group)
	d.Sequence = nextSequence(d.Sequence)
	sd, err := fleet.Sign(*d, priv)
	if err != nil {
		return err
	}
	p, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	return cn.Publish(ctx, cn.Topics().Desired(fleet.KindGroup, group), p, true)
}

// statuses reads every gateway's retained status.
func statuses(ctx context.Context, cn *fleet.Conn) ([]fleet.StatusDoc, error) {
	got, err := cn.Retained(ctx, cn.Topics().AllStatus())
	if err != nil {
		return nil, err
	}
	var out []fleet.StatusDoc
	for _, p := range got {
		var st fleet.StatusDoc
		if json.Unmarshal(p, &st) == nil && st.Gateway != "" {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b fleet.StatusDoc) int { return strings.Compare(a.Gateway, b.Gateway) })
	return out, nil
}

// watchGroup follows the status documents until every gateway of group
// online before (online) or seen online during the watch reports function name with module sha
// active or an error about it, or ctx ends (then the ones that did not are
// pending, offline or not).
func watchGroup(ctx context.Context, cn *fleet.Conn, group, name, sha string, online []string, progress func(gw, what string)) (converged []string, failed map[string]string, pending []string) {
	type state struct {
		st   fleet.StatusDoc
		done string // "", "ok", "failed"
		// seen online during the watch: it stays awaited while offline
		// for a moment (a broker restart sends every gateway's will).
		online bool
	}
	states := map[string]*state{}
	for _, gw := range online {
		states[gw] = &state{online: true}
	}
	converged = []string{}
	updates := make(chan fleet.StatusDoc, 256)
	_ = cn.Subscribe(ctx, cn.Topics().AllStatus(), func(_ string, p []byte, _ bool) {
		var st fleet.StatusDoc
		if json.Unmarshal(p, &st) == nil && slices.Contains(st.Groups, group) {
			select {
			case updates <- st:
			case <-ctx.Done():
			}
		}
	})
	failed = map[string]string{}
	finished := func() bool {
		for _, s := range states {
			if s.online && s.done == "" {
				return false
			}
		}
		return len(states) > 0
	}
	for !finished() {
		select {
		case <-ctx.Done():
			for gw, s := range states {
				if s.done == "" && s.online {
					pending = append(pending, gw)
				}
			}
			slices.Sort(pending)
			slices.Sort(converged)
			return converged, failed, pending
		case st := <-updates:
			s := states[st.Gateway]
			if s == nil {
				s = &state{}
				states[st.Gateway] = s
			}
			s.st = st
			s.online = s.online || st.Online
			if s.done != "" {
				continue
			}
			for _, f := range st.Functions {
				if f.Name == name && f.Hash == sha {
					s.done = "ok"
					converged = append(converged, st.Gateway)
					progress(st.Gateway, fmt.Sprintf("%s version %d active", name, f.Version))
				}
			}
			for _, e := range st.Errors {
				if s.done == "" && (strings.HasPrefix(e, "function "+name+":") || strings.HasPrefix(e, fleet.Target(fleet.KindGroup, group)+":")) {
					s.done = "failed"
					failed[st.Gateway] = e
					progress(st.Gateway, "refused: "+e)
				}
			}
		}
	}
	slices.Sort(converged)
	return converged, failed, nil
}

func fleetLsAction(c *cli.Context) error {
	if c.String("broker") == "" {
		return usagef("fleet ls: --broker is required")
	}
	cn, err := fleetConnect(c)
	if err != nil {
		return err
	}
	defer cn.Close()
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	all, err := statuses(ctx, cn)
	if err != nil {
		return err
	}
	out := []fleet.StatusDoc{}
	for _, st := range all {
		if g := c.String("group"); g == "" || slices.Contains(st.Groups, g) {
			out = append(out, st)
		}
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tONLINE\tGROUPS\tFUNCTIONS\tERRORS")
	for _, st := range out {
		var fns []string
		for _, f := range st.Functions {
			fns = append(fns, fmt.Sprintf("%s@%d(%s)", f.Name, f.Version, f.Origin))
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%d\n", st.Gateway, st.Online, strings.Join(st.Groups, ","), strings.Join(fns, " "), len(st.Errors))
	}
	return tw.Flush()
}
