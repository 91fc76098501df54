package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/tlsclient"
	"github.com/edgefn/edgefn/sync/fleet"
	"github.com/edgefn/edgefn/sync/uplink"
)

func fleetCommand() *cli.Command {
	keyFlags := func(extra ...cli.Flag) []cli.Flag {
		return fleetFlags(append([]cli.Flag{jsonFlag(),
			&cli.StringFlag{Name: "group", Usage: "the group whose document is written"},
			&cli.StringFlag{Name: "key", Usage: "ed25519 private key file (edgefn keygen)"},
			&cli.DurationFlag{Name: "watch", Usage: "wait this long for the group's online gateways to report"},
		}, extra...)...)
	}
	return command("fleet", nil, nil, nil,
		command("fleet deploy", keyFlags(
			&cli.StringFlag{Name: "canary", Usage: "N or P%: gateways that run it for --watch before the group"},
			&cli.StringFlag{Name: "max-error-rate", Usage: "P%: a canary failing more of its events is rolled back (default 0%)"},
			&cli.Int64Flag{Name: "min-invocations", Usage: "a canary with fewer invocations in its watch is rolled back (default 0)"},
			&cli.IntFlag{Name: "chunk-size", Value: fleet.DefaultChunkSize, Usage: "bytes per retained blob chunk"},
			&cli.StringFlag{Name: "module-url", Usage: "https URL the gateways fetch the module from, instead of broker chunks"},
		), nil, withArgs(1, 1, "one manifest file", fleetDeployAction)),
		command("fleet rollback", keyFlags(), nil, fleetRollbackAction),
		command("fleet rm", keyFlags(), nil, fleetRmAction),
		command("fleet history", fleetFlags(jsonFlag(), &cli.StringFlag{Name: "group", Usage: "the group"}), nil, fleetHistoryAction),
		command("fleet ls", fleetFlags(jsonFlag(), &cli.StringFlag{Name: "group", Usage: "only the gateways of this group"}), nil, fleetLsAction),
		command("fleet login", fleetFlags(jsonFlag()), nil, fleetLoginAction),
	)
}

// historyDepth is how many earlier entries of a function a group's history
// keeps.
const historyDepth = 10

// fleetFlags are the broker flags of every fleet subcommand.
func fleetFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "broker", EnvVars: []string{"EDGEFN_FLEET_BROKER"}, Usage: "cloud broker URL (tcp://, mqtts://...); default: the one of edgefn fleet login"},
		&cli.StringFlag{Name: "topic-prefix", Value: fleet.DefaultPrefix, Usage: "topic prefix of the fleet"},
		&cli.StringFlag{Name: "username", EnvVars: []string{"EDGEFN_FLEET_USERNAME"}},
		&cli.StringFlag{Name: "password", EnvVars: []string{"EDGEFN_FLEET_PASSWORD"}},
		&cli.StringFlag{Name: "ca", Usage: "CA file to trust for the broker"},
		&cli.StringFlag{Name: "cert", Usage: "client certificate (mTLS)"},
		&cli.StringFlag{Name: "key-file", Usage: "client certificate's key (mTLS)"},
	}, extra...)
}

// fleetDial resolves the broker and its credentials from the flags, the
// environment and what edgefn fleet login stored.
func fleetDial(c *cli.Context) (fleet.Dial, brokerCreds, error) {
	creds, err := loadCredentials()
	if err != nil {
		return fleet.Dial{}, brokerCreds{}, err
	}
	broker := c.String("broker")
	if broker == "" {
		broker = creds.FleetDefault
	}
	if broker == "" {
		return fleet.Dial{}, brokerCreds{}, usagef("fleet %s: --broker is required (or store one with edgefn fleet login BROKER)", cmdName(c))
	}
	if err := uplink.CheckBroker(broker); err != nil {
		return fleet.Dial{}, brokerCreds{}, usagef("fleet %s: --%v", cmdName(c), err)
	}
	bc := creds.Fleet[broker]
	if u := c.String("username"); u != "" && u != bc.Username {
		bc.Username, bc.Password = u, ""
	}
	for _, f := range []struct {
		flag string
		dst  *string
	}{{"password", &bc.Password}, {"ca", &bc.CA}, {"cert", &bc.Cert}, {"key-file", &bc.Key}} {
		if v := c.String(f.flag); v != "" {
			*f.dst = v
		}
	}
	// Resubscribe: --watch follows the gateways across a broker restart.
	d := fleet.Dial{Broker: broker, Username: bc.Username, Password: bc.Password, Resubscribe: true}
	if tc := (tlsclient.Config{CAFile: bc.CA, CertFile: bc.Cert, KeyFile: bc.Key}); tc.IsSet() {
		if errs := tc.Problems(); len(errs) > 0 {
			return fleet.Dial{}, brokerCreds{}, usagef("fleet %s: %v", cmdName(c), errors.Join(errs...))
		}
		t, err := tc.Load()
		if err != nil {
			return fleet.Dial{}, brokerCreds{}, usagef("fleet %s: %v", cmdName(c), err)
		}
		d.TLS = t
	}
	return d, bc, nil
}

func fleetConnect(c *cli.Context) (*fleet.Conn, error) {
	d, _, err := fleetDial(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	return fleet.Connect(ctx, d, fleet.Topics{Prefix: c.String("topic-prefix")})
}

// fleetReader connects for a command that only reads, bounded by 30 s;
// done disconnects.
func fleetReader(c *cli.Context) (*fleet.Conn, context.Context, func(), error) {
	cn, err := fleetConnect(c)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	return cn, ctx, func() { cancel(); cn.Close() }, nil
}

// oneArg parses the flags given around the arguments again and wants
// exactly one argument.
func oneArg(c *cli.Context, what string) (*cli.Context, error) {
	c, err := interleaved(c)
	if err != nil {
		return nil, err
	}
	return c, wantArgs(c, 1, 1, what)
}

func fleetLoginAction(c *cli.Context) error {
	c, err := oneArg(c, "the cloud broker's URL")
	if err != nil {
		return err
	}
	if err := c.Set("broker", c.Args().First()); err != nil {
		return err
	}
	d, bc, err := fleetDial(c)
	if err != nil {
		return err
	}
	for _, p := range []*string{&bc.CA, &bc.Cert, &bc.Key} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	cn, err := fleet.Connect(ctx, d, fleet.Topics{Prefix: c.String("topic-prefix")})
	if err != nil {
		return fmt.Errorf("fleet login: %w (nothing stored)", err)
	}
	cn.Close()
	creds, err := loadCredentials()
	if err != nil {
		return err
	}
	if creds.Fleet == nil {
		creds.Fleet = map[string]brokerCreds{}
	}
	bc.Added = time.Now().UTC()
	creds.Fleet[d.Broker] = bc
	creds.FleetDefault = d.Broker
	if err := creds.save(); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, map[string]any{"broker": d.Broker, "username": bc.Username, "tls": d.TLS != nil, "credentials": creds.path})
	}
	fmt.Fprintf(c.App.Writer, "connected to %s; stored in %s; fleet commands use it by default\n", d.Broker, creds.path)
	return nil
}

// fleetResult is what fleet deploy, rollback and rm print with --json.
type fleetResult struct {
	Function string `json:"function"`
	Group    string `json:"group"`
	Module   string `json:"module_sha256,omitempty"`
	// Sequence is the group document's new sequence; 0 if it was not
	// written (a failed canary).
	Sequence uint64 `json:"sequence"`
	// Canaries ran the function before the group; CanaryFailed says why
	// those that failed did; RolledBack says the canaries were returned to
	// the group's previous entry.
	Canaries     []string          `json:"canaries,omitempty"`
	CanaryFailed map[string]string `json:"canary_failed,omitempty"`
	RolledBack   bool              `json:"rolled_back,omitempty"`
	Converged    []string          `json:"converged"`
	Failed       map[string]string `json:"failed,omitempty"`
	Pending      []string          `json:"pending,omitempty"`
	ElapsedMS    float64           `json:"elapsed_ms"`
}

// fleetOp is one signed change to a group's desired state.
type fleetOp struct {
	c     *cli.Context
	cn    *fleet.Conn
	ctx   context.Context
	group string
	priv  ed25519.PrivateKey
	start time.Time
	cmd   string // deploy, rollback, rm
	res   fleetResult
	// online are the group's gateways online before the group's document
	// was written (with --watch): awaited even if offline for a moment.
	online []string
	// canaryDocs are the canaries' own documents before the canary, to
	// write back (with a new sequence) once it ends.
	canaryDocs map[string]fleet.Document
}

// newFleetOp checks the flags every signed fleet command needs and
// connects. The caller closes op.cn.
func newFleetOp(c *cli.Context, what string) (*fleetOp, context.CancelFunc, error) {
	if err := wantArgs(c, 1, 1, what); err != nil {
		return nil, nil, err
	}
	for _, f := range []string{"group", "key"} {
		if c.String(f) == "" {
			return nil, nil, usagef("fleet %s: --%s is required", cmdName(c), f)
		}
	}
	group := c.String("group")
	if err := fleet.CheckName(group); err != nil {
		return nil, nil, usagef("fleet %s: --group %v", cmdName(c), err)
	}
	priv, err := readPrivateKey(c.String("key"))
	if err != nil {
		return nil, nil, usagef("fleet %s: --key: %v", cmdName(c), err)
	}
	if _, _, err := fleetDial(c); err != nil {
		return nil, nil, err
	}
	op := &fleetOp{c: c, group: group, priv: priv, start: time.Now(), cmd: cmdName(c)}
	op.res = fleetResult{Group: group, Converged: []string{}}
	if op.cn, err = fleetConnect(c); err != nil {
		return nil, nil, err
	}
	// Bounded: uploads and reads, plus the watches of a canary and the
	// group, plus a margin.
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute+3*c.Duration("watch"))
	op.ctx = ctx
	return op, func() { cancel(); op.cn.Close() }, nil
}

func (op *fleetOp) progress(gw, what string) { fmt.Fprintf(op.c.App.ErrWriter, "%s: %s\n", gw, what) }

// pub is the signing key's public half: entries signed again must verify
// with it.
func (op *fleetOp) pub() []ed25519.PublicKey {
	return []ed25519.PublicKey{op.priv.Public().(ed25519.PublicKey)}
}

// readDoc is a target's current document (unverified: the agents verify),
// or an empty one, and whether one was there.
func (op *fleetOp) readDoc(kind, name string) (fleet.Document, bool, error) {
	topic := op.cn.Topics().Desired(kind, name)
	got, err := op.cn.Retained(op.ctx, topic)
	if err != nil {
		return fleet.Document{}, false, err
	}
	d := fleet.Document{Target: fleet.Target(kind, name)}
	p, ok := got[topic]
	if ok {
		if d, err = fleet.Peek(p); err != nil {
			return fleet.Document{}, false, fmt.Errorf("%s %s: current document: %w", kind, name, err)
		}
	}
	d.Functions = slices.DeleteFunc(d.Functions, func(f fleet.Function) bool { return f.Name == "" })
	return d, ok, nil
}

// writeDoc signs d for its target with a sequence above its current one
// and publishes it retained.
func (op *fleetOp) writeDoc(kind, name string, d *fleet.Document) error {
	d.Target = fleet.Target(kind, name)
	d.Sequence = nextSequence(d.Sequence)
	if d.Functions == nil {
		d.Functions = []fleet.Function{}
	}
	sd, err := fleet.Sign(*d, op.priv)
	if err != nil {
		return err
	}
	p, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	return op.cn.Publish(op.ctx, op.cn.Topics().Desired(kind, name), p, true)
}

// writeGroupDoc writes the group's document; with --watch it first notes
// the group's online gateways, which the watch awaits.
func (op *fleetOp) writeGroupDoc(d *fleet.Document) error {
	if op.c.Duration("watch") > 0 {
		sts, err := statuses(op.ctx, op.cn)
		if err != nil {
			return err
		}
		op.online = nil
		for _, st := range sts {
			if st.Online && slices.Contains(st.Groups, op.group) {
				op.online = append(op.online, st.Gateway)
			}
		}
	}
	if err := op.writeDoc(fleet.KindGroup, op.group, d); err != nil {
		return err
	}
	op.res.Sequence = d.Sequence
	return nil
}

func entryOf(d fleet.Document, name string) (fleet.Function, bool) {
	i := slices.IndexFunc(d.Functions, func(f fleet.Function) bool { return f.Name == name })
	if i < 0 {
		return fleet.Function{}, false
	}
	return d.Functions[i], true
}

// withEntry replaces or adds f in the document's functions.
func withEntry(fns []fleet.Function, f fleet.Function) []fleet.Function {
	out := slices.DeleteFunc(slices.Clone(fns), func(x fleet.Function) bool { return x.Name == f.Name })
	return append(out, f)
}

func without(fns []fleet.Function, name string) []fleet.Function {
	return slices.DeleteFunc(slices.Clone(fns), func(x fleet.Function) bool { return x.Name == name })
}

// fleetHistory is the retained history of a group's function: the entries
// fleet deploy and fleet rm replaced, newest first.
type fleetHistory struct {
	Group    string           `json:"group"`
	Function string           `json:"function"`
	Entries  []fleet.Function `json:"entries"`
}

func (op *fleetOp) readHistory(name string) (fleetHistory, error) {
	topic := op.cn.Topics().History(op.group, name)
	got, err := op.cn.Retained(op.ctx, topic)
	h := fleetHistory{Group: op.group, Function: name}
	if err != nil {
		return h, err
	}
	if p, ok := got[topic]; ok {
		if err := json.Unmarshal(p, &h); err != nil {
			return h, fmt.Errorf("history of %s in group %s (%s): %v", name, op.group, topic, err)
		}
	}
	h.Entries = slices.DeleteFunc(h.Entries, func(f fleet.Function) bool { return f.Name != name })
	return h, nil
}

func (op *fleetOp) writeHistory(h fleetHistory) error {
	if len(h.Entries) > historyDepth {
		h.Entries = h.Entries[:historyDepth]
	}
	if h.Entries == nil {
		h.Entries = []fleet.Function{}
	}
	p, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return op.cn.Publish(op.ctx, op.cn.Topics().History(op.group, h.Function), p, true)
}

// pushHistory keeps the entry a change replaces (nothing if it is the same
// content as the replacement).
func (op *fleetOp) pushHistory(old fleet.Function, next *fleet.Function) error {
	if next != nil && old.Module.SHA256 == next.Module.SHA256 && string(old.Manifest) == string(next.Manifest) {
		return nil
	}
	h, err := op.readHistory(old.Name)
	if err != nil {
		return err
	}
	h.Entries = append([]fleet.Function{old}, h.Entries...)
	return op.writeHistory(h)
}

// resign verifies an entry against the signing key and signs its
// statement again above both its own sequence and after.
func (op *fleetOp) resign(f fleet.Function, after uint64) (fleet.Function, error) {
	st, err := f.Verify(op.pub())
	if err != nil {
		return fleet.Function{}, fmt.Errorf("the earlier entry of %s (module %.12s) does not verify with --key, so it is not signed again: %w", f.Name, f.Module.SHA256, err)
	}
	return f.Resign(st, nextSequence(max(st.Sequence, after)), op.priv), nil
}

// finish prints the result and returns failedError if something failed.
func (op *fleetOp) finish(summary string) error {
	res := &op.res
	res.ElapsedMS = api.Millis(time.Since(op.start))
	c := op.c
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else if summary != "" {
		fmt.Fprintln(c.App.Writer, summary)
	}
	bad := len(res.Failed) > 0 || len(res.Pending) > 0 || len(res.CanaryFailed) > 0
	for _, gw := range slices.Sorted(maps.Keys(res.CanaryFailed)) {
		fmt.Fprintf(c.App.ErrWriter, "edgefn: canary %s: %s\n", gw, res.CanaryFailed[gw])
	}
	if len(res.CanaryFailed) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "edgefn: fleet %s: %d of %d canaries failed; canaries rolled back, group %s unchanged\n", op.cmd, len(res.CanaryFailed), len(res.Canaries), op.group)
	}
	for _, gw := range slices.Sorted(maps.Keys(res.Failed)) {
		fmt.Fprintf(c.App.ErrWriter, "edgefn: %s: %s\n", gw, res.Failed[gw])
	}
	if len(res.Failed) > 0 || len(res.Pending) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "edgefn: fleet %s: %d gateways failed, %d did not report: %s\n", op.cmd, len(res.Failed), len(res.Pending), strings.Join(res.Pending, ", "))
	}
	if bad {
		return failedError{}
	}
	return nil
}

// watch follows the group's online gateways until each reaches the state
// (reached) or reports an error about the function, for --watch.
func (op *fleetOp) watch(name string, reached func(fleet.StatusDoc) (string, bool)) {
	w := op.c.Duration("watch")
	if w <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(op.ctx, w)
	defer cancel()
	op.res.Converged, op.res.Failed, op.res.Pending = watchGroup(ctx, op.cn, op.group, name, op.res.Sequence, op.online, reached, op.progress)
}

func (op *fleetOp) summary() string {
	if op.c.Duration("watch") <= 0 {
		return ""
	}
	r := op.res
	return fmt.Sprintf("%s: %d gateways converged, %d failed, %d pending in %.1fs", r.Function, len(r.Converged), len(r.Failed), len(r.Pending), time.Since(op.start).Seconds())
}

// runs is the watch state of a gateway running module sha of name.
func runs(name, sha string) func(fleet.StatusDoc) (string, bool) {
	return func(st fleet.StatusDoc) (string, bool) {
		for _, f := range st.Functions {
			if f.Name == name && f.Hash == sha {
				return fmt.Sprintf("%s version %d active", name, f.Version), true
			}
		}
		return "", false
	}
}

func fleetDeployAction(c *cli.Context) error {
	c, err := interleaved(c)
	if err != nil {
		return err
	}
	rule, err := canaryFlags(c)
	if err != nil {
		return err
	}
	path := c.Args().First()
	if c.NArg() != 1 {
		return usagef("deploy: want one manifest file, got %d argument(s)", c.NArg())
	}
	manifest, err := os.ReadFile(path)
	if err != nil {
		return usagef("fleet deploy: %v", err)
	}
	name := manifestName(path, manifest)
	if name == "" {
		return usagef("fleet deploy: %s: no function name (edgefn deploy to a single agent lists the manifest's problems)", path)
	}
	murl := c.String("module-url")
	if murl != "" {
		if err := fleet.CheckURL(murl); err != nil {
			return usagef("fleet deploy: --module-url: %v", err)
		}
	}
	_, wasm, err := readModule(path, manifest)
	if err != nil {
		return err
	}
	op, done, err := newFleetOp(c, "one manifest file")
	if err != nil {
		return err
	}
	defer done()
	op.res.Function = name
	var mod fleet.Module
	if murl != "" {
		sum := sha256.Sum256(wasm)
		mod = fleet.Module{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(wasm)), URL: murl}
	} else if mod, err = op.cn.PublishBlob(op.ctx, wasm, c.Int("chunk-size")); err != nil {
		return err
	}
	op.res.Module = mod.SHA256
	doc, _, err := op.readDoc(fleet.KindGroup, op.group)
	if err != nil {
		return err
	}
	prev, hadPrev := entryOf(doc, name)
	entry := fleet.Function{Name: name, Manifest: manifest, Module: mod,
		Activation: activation.Sign(activation.New(activation.Deploy, name, manifest, wasm, nextSequence(0)), op.priv)}
	if rule.spec != "" {
		if hadPrev {
			// Check now that a failed canary can roll back to it.
			if _, err := prev.Verify(op.pub()); err != nil {
				return fmt.Errorf("fleet deploy --canary: group %s's current entry of %s does not verify with --key, so a failed canary could not be rolled back to it: %w (deploy with the key that signed it)", op.group, name, err)
			}
		}
		ok, err := op.runCanary(rule, entry)
		if err != nil {
			return err
		}
		if !ok {
			return op.finish("")
		}
		// The group may have changed during the watch.
		if doc, _, err = op.readDoc(fleet.KindGroup, op.group); err != nil {
			return err
		}
		prev, hadPrev = entryOf(doc, name)
	}
	if hadPrev {
		if err := op.pushHistory(prev, &entry); err != nil {
			return err
		}
	}
	doc.Functions = withEntry(doc.Functions, entry)
	if err := op.writeGroupDoc(&doc); err != nil {
		return err
	}
	op.res.Sequence = doc.Sequence
	where := fmt.Sprintf("%d chunks", mod.Chunks())
	if murl != "" {
		where = "at " + murl
	}
	fmt.Fprintf(c.App.ErrWriter, "published %s (module %.12s, %s) in group %s, document sequence %d\n", name, mod.SHA256, where, op.group, doc.Sequence)
	if err := op.restoreCanaries(); err != nil {
		return err
	}
	op.watch(name, runs(name, mod.SHA256))
	return op.finish(op.summary())
}

// fleetNameOp starts a signed command on one function NAME.
func fleetNameOp(c *cli.Context) (*fleetOp, string, context.CancelFunc, error) {
	c, err := interleaved(c)
	if err != nil {
		return nil, "", nil, err
	}
	op, done, err := newFleetOp(c, "one function name")
	if err != nil {
		return nil, "", nil, err
	}
	op.res.Function = c.Args().First()
	return op, op.res.Function, done, nil
}

func fleetRollbackAction(c *cli.Context) error {
	op, name, done, err := fleetNameOp(c)
	if err != nil {
		return err
	}
	defer done()
	h, err := op.readHistory(name)
	if err != nil {
		return err
	}
	if len(h.Entries) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "edgefn: fleet rollback: group %s has no earlier entry of %s (fleet deploy and fleet rm keep the last %d)\n", op.group, name, historyDepth)
		return failedError{}
	}
	doc, _, err := op.readDoc(fleet.KindGroup, op.group)
	if err != nil {
		return err
	}
	var after uint64
	if cur, ok := entryOf(doc, name); ok {
		if st, err := cur.Activation.Verify(op.pub()); err == nil {
			after = st.Sequence
		}
	}
	entry, err := op.resign(h.Entries[0], after)
	if err != nil {
		return err
	}
	doc.Functions = withEntry(doc.Functions, entry)
	if err := op.writeGroupDoc(&doc); err != nil {
		return err
	}
	h.Entries = h.Entries[1:]
	if err := op.writeHistory(h); err != nil {
		return err
	}
	op.res.Module, op.res.Sequence = entry.Module.SHA256, doc.Sequence
	fmt.Fprintf(c.App.ErrWriter, "rolled %s in group %s back to module %.12s, document sequence %d (%d earlier entries left)\n", name, op.group, entry.Module.SHA256, doc.Sequence, len(h.Entries))
	op.watch(name, runs(name, entry.Module.SHA256))
	return op.finish(op.summary())
}

func fleetRmAction(c *cli.Context) error {
	op, name, done, err := fleetNameOp(c)
	if err != nil {
		return err
	}
	defer done()
	doc, _, err := op.readDoc(fleet.KindGroup, op.group)
	if err != nil {
		return err
	}
	cur, ok := entryOf(doc, name)
	if !ok {
		fmt.Fprintf(c.App.ErrWriter, "edgefn: fleet rm: group %s's document does not name %s\n", op.group, name)
		return failedError{}
	}
	if err := op.pushHistory(cur, nil); err != nil {
		return err
	}
	doc.Functions = without(doc.Functions, name)
	if err := op.writeGroupDoc(&doc); err != nil {
		return err
	}
	op.res.Sequence = doc.Sequence
	fmt.Fprintf(c.App.ErrWriter, "removed %s from group %s, document sequence %d (fleet rollback %s brings it back)\n", name, op.group, doc.Sequence, name)
	op.watch(name, func(st fleet.StatusDoc) (string, bool) {
		if slices.ContainsFunc(st.Functions, func(f fleet.StatusFunction) bool { return f.Name == name && f.Origin == fleet.OriginFleet }) {
			return "", false
		}
		return name + " removed", true
	})
	return op.finish(op.summary())
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
// online before the document (online) or seen online during the watch
// reaches the state (reached says so and what to print) or reports
// an error about the function or the group's document, or ctx ends.
func watchGroup(ctx context.Context, cn *fleet.Conn, group, name string, seq uint64, online []string, reached func(fleet.StatusDoc) (string, bool), progress func(gw, what string)) (converged []string, failed map[string]string, pending []string) {
	type state struct {
		st   fleet.StatusDoc
		done string // "", "ok", "failed"
		// seen online during the watch: it stays awaited while offline
		// for a moment (a broker restart sends every gateway's will).
		online bool
	}
	// The group's gateways are those online before the document, and any
	// that reports online during the watch.
	states := map[string]*state{}
	for _, gw := range online {
		states[gw] = &state{online: true}
	}
	updates, stop := followStatuses(ctx, cn, func(st fleet.StatusDoc) bool { return slices.Contains(st.Groups, group) })
	defer stop()
	converged, failed = []string{}, map[string]string{}
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
			if what, ok := reached(st); ok {
				s.done = "ok"
				converged = append(converged, st.Gateway)
				progress(st.Gateway, what)
				continue
			}
			if e, ok := errorAbout(st, name, seq, fleet.Target(fleet.KindGroup, group)); ok {
				s.done = "failed"
				failed[st.Gateway] = e
				progress(st.Gateway, "refused: "+e)
			}
		}
	}
	slices.Sort(converged)
	return converged, failed, nil
}

// errorAbout is the first error of a status about one of the targets'
// documents, or about function name once the gateway accepted the first
// target's document of sequence seq (an error from before is stale).
func errorAbout(st fleet.StatusDoc, name string, seq uint64, targets ...string) (string, bool) {
	for _, e := range st.Errors {
		if strings.HasPrefix(e, "function "+name+":") && st.Documents[targets[0]] >= seq {
			return e, true
		}
		for _, t := range targets {
			if strings.HasPrefix(e, t+":") {
				return e, true
			}
		}
	}
	return "", false
}

// historyEntry is one row of fleet history: what an entry activates and
// who signed it (unverified: the gateways and fleet rollback verify).
type historyEntry struct {
	Module   string `json:"module_sha256"`
	Manifest string `json:"manifest_sha256"`
	Sequence uint64 `json:"sequence"`
	Key      string `json:"key"`
}

func historyOf(f fleet.Function) historyEntry {
	e := historyEntry{Module: f.Module.SHA256, Key: f.Activation.Key}
	if st, err := activation.Parse([]byte(f.Activation.Statement)); err == nil {
		e.Manifest, e.Sequence = hex.EncodeToString(st.Manifest[:]), st.Sequence
	}
	return e
}

func fleetHistoryAction(c *cli.Context) error {
	c, err := oneArg(c, "one function name")
	if err != nil {
		return err
	}
	group, name := c.String("group"), c.Args().First()
	if group == "" {
		return usagef("fleet history: --group is required")
	}
	if err := fleet.CheckName(group); err != nil {
		return usagef("fleet history: --group %v", err)
	}
	cn, ctx, done, err := fleetReader(c)
	if err != nil {
		return err
	}
	defer done()
	op := &fleetOp{c: c, cn: cn, ctx: ctx, group: group}
	doc, _, err := op.readDoc(fleet.KindGroup, group)
	if err != nil {
		return err
	}
	h, err := op.readHistory(name)
	if err != nil {
		return err
	}
	out := struct {
		Group    string         `json:"group"`
		Function string         `json:"function"`
		Current  *historyEntry  `json:"current"`
		Earlier  []historyEntry `json:"earlier"`
	}{Group: group, Function: name, Earlier: []historyEntry{}}
	if cur, ok := entryOf(doc, name); ok {
		e := historyOf(cur)
		out.Current = &e
	}
	for _, f := range h.Entries {
		out.Earlier = append(out.Earlier, historyOf(f))
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "\tMODULE\tMANIFEST\tSEQUENCE\tKEY")
	row := func(label string, e historyEntry) {
		fmt.Fprintf(tw, "%s\t%.12s\t%.12s\t%d\t%.12s\n", label, e.Module, e.Manifest, e.Sequence, e.Key)
	}
	if out.Current != nil {
		row("current", *out.Current)
	} else {
		fmt.Fprintln(tw, "current\t(none: not in the group's document)\t\t\t")
	}
	for i, e := range out.Earlier {
		row(fmt.Sprintf("rollback %d", i+1), e)
	}
	return tw.Flush()
}

func fleetLsAction(c *cli.Context) error {
	cn, ctx, done, err := fleetReader(c)
	if err != nil {
		return err
	}
	defer done()
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
	// EVENTS and FAILED: every function's health over the gateway's
	// window (fleet.health_window).
	fmt.Fprintln(tw, "GATEWAY\tONLINE\tGROUPS\tFUNCTIONS\tEVENTS\tFAILED\tERRORS")
	for _, st := range out {
		var fns []string
		var events, failed int64
		for _, f := range st.Functions {
			fns = append(fns, fmt.Sprintf("%s@%d(%s)", f.Name, f.Version, f.Origin))
			events += f.Invocations
			for _, n := range f.Failures {
				failed += n
			}
		}
		for _, p := range st.Pending { // not active yet: fetching, failed...
			fns = append(fns, fmt.Sprintf("%s(%s)", p.Name, p.State))
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%d\t%d\t%d\n", st.Gateway, st.Online, strings.Join(st.Groups, ","), strings.Join(fns, " "), events, failed, len(st.Errors))
	}
	return tw.Flush()
}

// cmdName is the subcommand's name, also in a context interleaved made.
func cmdName(c *cli.Context) string {
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name != "" {
			return x.Command.Name
		}
	}
	return ""
}
