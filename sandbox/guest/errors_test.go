package guest

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		rc   int32
		want error
		msg  string
	}{
		{0, nil, ""},
		{5, nil, ""},
		{-1, ErrDenied, `edgefn.publish "a/b": denied by grants`},
		{-2, ErrOverLimit, `edgefn.publish "a/b": over a limit`},
		{-3, ErrNotFound, `edgefn.publish "a/b": not found`},
		{-4, ErrInvalid, `edgefn.publish "a/b": invalid argument`},
		{-5, ErrUnavailable, `edgefn.publish "a/b": not available on this device`},
		{-9, Code(-9), `edgefn.publish "a/b": return code -9`},
	} {
		err := check("publish", "a/b", tc.rc)
		if tc.want == nil {
			if err != nil {
				t.Errorf("rc %d: got %v, want nil", tc.rc, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("rc %d: %v is not %v", tc.rc, err, tc.want)
		}
		var e *Error
		if !errors.As(err, &e) || e.Op != "publish" || e.Code != Code(tc.rc) {
			t.Errorf("rc %d: errors.As gave %+v", tc.rc, e)
		}
		if err.Error() != tc.msg {
			t.Errorf("rc %d: message %q, want %q", tc.rc, err.Error(), tc.msg)
		}
	}
	if errors.Is(check("kv_get", "k", -3), ErrDenied) {
		t.Error("ErrNotFound matched ErrDenied")
	}
	if got := check("emit", "", -2).Error(); got != "edgefn.emit: over a limit" {
		t.Errorf("message without arg: %q", got)
	}
}
