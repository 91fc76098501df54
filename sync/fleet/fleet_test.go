package fleet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/mosquittotest"
)

func keypair(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func connect(t *testing.T, b *mosquittotest.Broker) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := Connect(ctx, Dial{Broker: b.URL()}, Topics{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cn.Close)
	return cn
}

// entry publishes wasm as a blob and returns the signed function entry.
func entry(t *testing.T, cn *Conn, priv ed25519.PrivateKey, name string, manifest, wasm []byte, seq uint64, chunk int) Function {
	t.Helper()
	m, err := cn.PublishBlob(context.Background(), wasm, chunk)
	if err != nil {
		t.Fatal(err)
	}
	return Function{Name: name, Manifest: manifest, Module: m,
		Activation: activation.Sign(activation.New(activation.Deploy, name, manifest, wasm, seq), priv)}
}

func publishDoc(t *testing.T, cn *Conn, kind, name string, d Document, priv ed25519.PrivateKey) []byte {
	t.Helper()
	sd, err := Sign(d, priv)
	if err != nil {
		t.Fatal(err)
	}
	p := mustJSON(t, sd)
	if err := cn.Publish(context.Background(), cn.Topics().Desired(kind, name), p, true); err != nil {
		t.Fatal(err)
	}
	return p
}

// A signed document and a chunked blob go through a real mosquitto as
// retained messages and come back verified; a tampered blob, a changed
// document, an untrusted key, a document moved to another target and an
// older sequence are refused.
func TestDocumentAndBlobThroughBroker(t *testing.T) {
	b := mosquittotest.Start(t)
	pub, priv := keypair(t)
	_, other := keypair(t)
	trusted := []ed25519.PublicKey{pub}
	cn := connect(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	wasm := bytes.Repeat([]byte("\x00asm-module-bytes-"), 20000) // 360 000 bytes: 4 chunks of 96 KiB
	manifest := []byte("name: temp-alert\n")
	f := entry(t, cn, priv, "temp-alert", manifest, wasm, 100, 0)
	if f.Module.Chunks() != 4 {
		t.Fatalf("chunks = %d", f.Module.Chunks())
	}
	target := Target(KindGroup, "lab")
	publishDoc(t, cn, KindGroup, "lab", Document{Target: target, Sequence: 10, Functions: []Function{f}}, priv)

	// A second client (the gateway) fetches and verifies.
	gw := connect(t, b)
	docs, err := gw.Retained(ctx, gw.Topics().Desired(KindGroup, "+"))
	if err != nil {
		t.Fatal(err)
	}
	payload := docs[gw.Topics().Desired(KindGroup, "lab")]
	sd, err := ParseSigned(payload)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sd.Verify(trusted, target)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Functions) != 1 || d.Sequence != 10 {
		t.Fatalf("document %+v", d)
	}
	got, err := gw.FetchBlob(ctx, d.Functions[0].Module, 64<<20)
	if err != nil || !bytes.Equal(got, wasm) {
		t.Fatalf("FetchBlob: %v (%d bytes)", err, len(got))
	}
	if _, err := gw.FetchBlob(ctx, d.Functions[0].Module, 1000); err == nil {
		t.Error("a module above the gateway's maximum was fetched")
	}

	// The sequence ledger: the same or an older document is refused,
	// across a reopen.
	path := filepath.Join(t.TempDir(), "fleet.json")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(target, d.Sequence); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(target, LedgerEntry{Sequence: d.Sequence, Signed: sd}); err != nil {
		t.Fatal(err)
	}
	l, _ = OpenLedger(path)
	for _, seq := range []uint64{9, 10} {
		if err := l.Check(target, seq); !errors.Is(err, ErrStale) {
			t.Errorf("sequence %d: %v, want ErrStale", seq, err)
		}
	}
	if err := l.Check(target, 11); err != nil {
		t.Error(err)
	}

	// Tampered blob: one chunk overwritten on the broker.
	if err := cn.Publish(ctx, cn.Topics().Chunk(f.Module.SHA256, 2), bytes.Repeat([]byte("X"), DefaultChunkSize), true); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.FetchBlob(ctx, f.Module, 64<<20); !errors.Is(err, ErrBlobMismatch) {
		t.Errorf("tampered blob: %v, want ErrBlobMismatch", err)
	}
	// A missing chunk: the fetch waits until its deadline.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	m := f.Module
	m.Size += int64(m.ChunkSize) // claims a fifth chunk nobody published
	if _, err := gw.FetchBlob(short, m, 64<<20); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "chunk 4 of 5 missing") || !strings.Contains(err.Error(), f.Module.SHA256) {
		t.Errorf("missing chunk: %v", err)
	}
	cancelShort()

	// Signatures.
	tampered := sd
	tampered.Document = strings.Replace(sd.Document, `"sequence":10`, `"sequence":99`, 1)
	if _, err := tampered.Verify(trusted, target); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed document: %v", err)
	}
	foreign, _ := Sign(d, other)
	if _, err := foreign.Verify(trusted, target); !errors.Is(err, ErrUntrustedKey) {
		t.Errorf("untrusted key: %v", err)
	}
	if _, err := sd.Verify(trusted, Target(KindGroup, "office")); !errors.Is(err, ErrWrongTarget) {
		t.Errorf("moved to another group: %v", err)
	}
	// An entry whose statement names other content.
	bad := d
	bad.Functions = []Function{f}
	bad.Functions[0].Manifest = []byte("name: temp-alert\nmemory: 1GiB\n")
	bsd, _ := Sign(bad, priv)
	if _, err := bsd.Verify(trusted, target); !errors.Is(err, ErrMalformed) {
		t.Errorf("manifest changed after the statement: %v", err)
	}
	// An entry whose statement is signed by an untrusted key, in a document
	// signed by a trusted one.
	bad.Functions[0] = f
	bad.Functions[0].Activation = activation.Sign(activation.New(activation.Deploy, "temp-alert", manifest, wasm, 100), other)
	bsd, _ = Sign(bad, priv)
	if _, err := bsd.Verify(trusted, target); !errors.Is(err, activation.ErrUntrustedKey) {
		t.Errorf("entry signed by an untrusted key: %v", err)
	}
	if k := base64.StdEncoding.EncodeToString(pub); sd.Key != k {
		t.Errorf("key %s", sd.Key)
	}
}

func TestDesiredMerge(t *testing.T) {
	a := Function{Name: "a", Manifest: []byte("1")}
	b1 := Function{Name: "b", Manifest: []byte("group")}
	b2 := Function{Name: "b", Manifest: []byte("own")}
	c := Function{Name: "c"}
	got := Desired(Document{Functions: []Function{a, b1}}, Document{Functions: []Function{c}}, Document{Functions: []Function{b2}})
	if len(got) != 3 || got[0].Name != "a" || string(got[1].Manifest) != "own" || got[2].Name != "c" {
		t.Fatalf("Desired = %+v", got)
	}
}
