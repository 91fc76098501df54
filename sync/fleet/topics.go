package fleet

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPrefix is the topic prefix when fleet.topic_prefix is not set.
const DefaultPrefix = "edgefn/fleet"

// MaxPrefixSlashes is how many '/' a topic prefix may hold: the deepest
// topic, <prefix>/blobs/<sha256>/<i>, adds 4 and AWS IoT Core refuses
// topics with more than 7.
const MaxPrefixSlashes = 3

// Topics is the topic layout under a prefix:
//
//	<prefix>/desired/group/<group>       retained signed document of a group
//	<prefix>/desired/gateway/<gateway>   retained signed document of one gateway
//	<prefix>/blobs/<sha256>/<i>          retained chunk i (0-based) of a module
//	<prefix>/status/<gateway>            retained status of a gateway (last will: offline)
//	<prefix>/history/group/<group>/<fn>  retained earlier entries of a function (fleet rollback)
type Topics struct{ Prefix string }

// Kinds of desired-state document targets.
const (
	KindGroup   = "group"
	KindGateway = "gateway"
)

var targetNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckName reports whether s can be a group or gateway id in a topic: no
// wildcards, no separators.
func CheckName(s string) error {
	if !targetNameRE.MatchString(s) {
		return fmt.Errorf("%q: want 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", s)
	}
	return nil
}

func (t Topics) prefix() string {
	if t.Prefix == "" {
		return DefaultPrefix
	}
	return strings.TrimSuffix(t.Prefix, "/")
}

// Desired is the topic of the document for a target ("group" or "gateway").
func (t Topics) Desired(kind, name string) string {
	return t.prefix() + "/desired/" + kind + "/" + name
}

// Target is the target a document published at Desired(kind, name)
// must name: "group/lab", "gateway/gw-1".
func Target(kind, name string) string { return kind + "/" + name }

// Chunk is the topic of chunk i of the blob with the given hex SHA-256.
func (t Topics) Chunk(sha string, i int) string {
	return t.prefix() + "/blobs/" + sha + "/" + strconv.Itoa(i)
}

// History is the topic of a group's earlier entries of a function (what
// fleet rollback activates again); only the CLI reads it.
func (t Topics) History(group, function string) string {
	return t.prefix() + "/history/group/" + group + "/" + function
}

// Status is the topic of a gateway's status document.
func (t Topics) Status(gateway string) string { return t.prefix() + "/status/" + gateway }

// AllStatus is the filter matching every gateway's status.
func (t Topics) AllStatus() string { return t.prefix() + "/status/+" }
