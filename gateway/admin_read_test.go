package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/gateway/api"
)

func getJSON(t *testing.T, h http.Handler, path string, want int, v any) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer tok-0123456789abcdef")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		t.Fatalf("GET %s: %d, want %d: %s", path, rec.Code, want, rec.Body)
	}
	if v != nil {
		// Decode into a zero value: fields left out (empty lists) must not
		// keep the previous answer's.
		reflect.ValueOf(v).Elem().SetZero()
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, rec.Body)
		}
	}
}

func TestReadRoutes(t *testing.T) {
	g := newTestGateway(t)
	deploy(t, g, "name: echo\nwasm: x.wasm\nlimits: {memory: 64KiB}\n", "echo.wasm")
	deploy(t, g, "name: spin\nwasm: x.wasm\nlimits: {timeout: 5ms}\n", "loop.wasm")
	ctx := context.Background()
	for range 3 {
		if _, err := g.Invoke(ctx, "echo", []byte("hi"), nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := g.Invoke(ctx, "spin", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	h := g.handler("tok-0123456789abcdef")

	var usage api.Usage
	getJSON(t, h, "/v1/usage?since=1h", 200, &usage)
	if len(usage.Functions) != 2 {
		t.Fatalf("usage %+v", usage)
	}
	echo, spin := usage.Functions[0], usage.Functions[1]
	if echo.Function != "echo" || echo.Invocations != 3 || echo.Errors != 0 || echo.Cold+echo.Warm != 3 {
		t.Errorf("echo usage %+v", echo)
	}
	if spin.Function != "spin" || spin.Invocations != 2 || spin.ErrorsByReason["timeout"] != 2 {
		t.Errorf("spin usage %+v", spin)
	}
	getJSON(t, h, "/v1/usage?since="+time.Now().Add(time.Hour).Format(time.RFC3339), 200, &usage)
	if len(usage.Functions) != 0 {
		t.Errorf("usage in the future: %+v", usage)
	}

	var logs api.Logs
	getJSON(t, h, "/v1/functions/spin/logs?since=1h", 200, &logs)
	if len(logs.Entries) != 2 || logs.Entries[0].Reason != "timeout" || logs.Last != logs.Entries[1].ID {
		t.Fatalf("spin logs %+v", logs)
	}
	first := logs.Entries[0].ID
	getJSON(t, h, "/v1/functions/spin/logs?after="+itoa(first), 200, &logs)
	if len(logs.Entries) != 1 || logs.Entries[0].ID <= first {
		t.Errorf("logs after %d: %+v", first, logs)
	}
	getJSON(t, h, "/v1/functions/spin/logs?after="+itoa(logs.Last), 200, &logs)
	if len(logs.Entries) != 0 || logs.Last == 0 {
		t.Errorf("logs after last: %+v", logs)
	}
	getJSON(t, h, "/v1/functions/spin/logs?limit=1", 200, &logs)
	if len(logs.Entries) != 1 {
		t.Errorf("limit=1: %+v", logs)
	}

	var ob api.Outbox
	getJSON(t, h, "/v1/outbox", 200, &ob)
	if ob.Depth != 3 || ob.Functions["echo"].Depth != 3 || ob.DeadLetterCount != 0 || len(ob.DeadLetters) != 0 {
		t.Errorf("outbox %+v", ob)
	}
	if err := g.store.DeadLetter(ctx, []uint64{1}, "schema refused"); err != nil {
		t.Fatal(err)
	}
	getJSON(t, h, "/v1/outbox", 200, &ob)
	if ob.Depth != 2 || ob.DeadLetterCount != 1 || len(ob.DeadLetters) != 1 || ob.DeadLetters[0].Payload != "hi" ||
		ob.DeadLetters[0].Reason != "schema refused" || ob.DeadLetters[0].ID != "gw1:1" {
		t.Errorf("outbox after dead letter %+v", ob)
	}

	for _, bad := range []struct {
		path string
		code int
		msg  string
	}{
		{"/v1/functions/nope/logs", 404, "not found"},
		{"/v1/functions/spin/logs?since=yesterday", 400, "since="},
		{"/v1/functions/spin/logs?limit=0", 400, "limit="},
		{"/v1/functions/spin/logs?after=-1", 400, "after="},
		{"/v1/usage?since=x", 400, "since="},
		{"/v1/outbox?dead_letters=many", 400, "dead_letters="},
	} {
		var e api.Error
		getJSON(t, h, bad.path, bad.code, &e)
		if !strings.Contains(e.Error, bad.msg) {
			t.Errorf("%s: error %q does not mention %q", bad.path, e.Error, bad.msg)
		}
	}
	req := httptest.NewRequest("GET", "/v1/usage", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("usage without a token: %d", rec.Code)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
