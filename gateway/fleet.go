package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/sync/fleet"
)

// fleetGateway is the registry as the fleet agent (sync/fleet) sees it.
type fleetGateway struct {
	g *Host
	// sums caches the manifest and module SHA-256 of a version by its
	// content hash: listing must not reread every module each minute.
	mu   sync.Mutex
	sums map[string][2]string
}

func (f *fleetGateway) Installed(ctx context.Context) ([]fleet.Installed, error) {
	fis := f.g.functions()
	out := make([]fleet.Installed, 0, len(fis))
	for _, fi := range fis {
		if fi.Version == 0 {
			continue
		}
		meta, err := f.g.reg.meta(fi.Name, fi.Version)
		if err != nil {
			continue
		}
		sums, err := f.sumsOf(fi.Name, meta)
		if err != nil {
			continue
		}
		in := fleet.Installed{Name: fi.Name, Version: fi.Version, ManifestSHA: sums[0], ModuleSHA256: sums[1], Origin: fleet.OriginLocal,
			Health: fleet.Health{Invocations: fi.Stats.Invocations, P99: fi.Stats.P99}}
		if meta.Origin == fleet.OriginFleet {
			in.Origin = fleet.OriginFleet
		}
		if len(fi.Stats.Errors) > 0 {
			in.Health.Failures = map[string]int64{}
			for r, n := range fi.Stats.Errors {
				in.Health.Failures[string(r)] = n
			}
		}
		out = append(out, in)
	}
	return out, nil
}

func (f *fleetGateway) sumsOf(name string, meta versionMeta) ([2]string, error) {
	f.mu.Lock()
	s, ok := f.sums[meta.Hash]
	f.mu.Unlock()
	if ok {
		return s, nil
	}
	sv, err := f.g.reg.load(name, meta.Version)
	if err != nil {
		return s, err
	}
	m, w := sha256.Sum256(sv.Manifest), sha256.Sum256(sv.Wasm)
	s = [2]string{hex.EncodeToString(m[:]), hex.EncodeToString(w[:])}
	f.mu.Lock()
	f.sums[meta.Hash] = s
	f.mu.Unlock()
	return s, nil
}

func (f *fleetGateway) Deploy(ctx context.Context, manifest, wasm []byte, sg activation.Signed) (int, error) {
	meta, err := f.g.Deploy(ctx, "fleet document", manifest, wasm, fleet.OriginFleet, &sg)
	return meta.Version, err
}

func (f *fleetGateway) Remove(ctx context.Context, name string) error { return f.g.Remove(ctx, name) }

// fleetAgent builds the fleet agent of cfg.Fleet.
func (a *Agent) fleetAgent() (*fleet.Agent, error) {
	cfg := a.cfg
	d := fleet.Dial{Broker: cfg.Fleet.Broker, ClientID: cfg.Fleet.ClientID, Username: cfg.Fleet.Username, Password: cfg.Fleet.Password}
	if cfg.Fleet.TLS.IsSet() {
		tc, err := cfg.Fleet.TLS.Load()
		if err != nil {
			return nil, err
		}
		d.TLS = tc
	}
	return fleet.NewAgent(*cfg.Fleet, fleet.AgentOptions{
		GatewayID: cfg.GatewayID, Trusted: a.trusted, DataDir: cfg.DataDir,
		Gateway: &fleetGateway{g: a.Host, sums: map[string][2]string{}}, Dial: d,
		Log: a.log.With("part", "fleet"),
	})
}
