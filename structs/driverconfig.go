package structs

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// configKind is the shape a driver config value must have.
type configKind int

const (
	kindString configKind = iota
	kindBool
	kindStringList
	kindStringMap
	kindObjectList
	kindObject
)

func (k configKind) String() string {
	return [...]string{"a string", "a bool", "a list of strings", "a map of strings", "a list of blocks", "a block"}[k]
}

// ContainerdConfigKeys are the task config keys of the containerd driver
// (and of "docker", its alias), with the shape of each value.
var containerdConfigKeys = map[string]configKind{
	"image":           kindString,
	"command":         kindString,
	"args":            kindStringList,
	"entrypoint":      kindStringList,
	"env":             kindStringMap,
	"ports":           kindStringList,
	"mounts":          kindObjectList,
	"mount":           kindObjectList,
	"cap_add":         kindStringList,
	"cap_drop":        kindStringList,
	"privileged":      kindBool,
	"readonly_rootfs": kindBool,
	"hostname":        kindString,
	"user":            kindString,
	"work_dir":        kindString,
	"auth":            kindObject,
	"labels":          kindStringMap,
}

// ContainerdConfigKeys returns the supported config keys, sorted.
func ContainerdConfigKeys() []string {
	keys := make([]string, 0, len(containerdConfigKeys))
	for k := range containerdConfigKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func validateDriverConfig(v *validator, p, driver string, cfg map[string]any) {
	if img, _ := cfg["image"].(string); img == "" {
		v.add(AttrPath(p, "image"), "config needs an image, such as image = \"registry.example.com/web:1.0\" or \"oci-archive:/path/image.tar\"")
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kind, ok := containerdConfigKeys[k]
		if !ok {
			msg := fmt.Sprintf("unknown key %q for driver %q", k, driver)
			if s := Suggest(k, ContainerdConfigKeys()); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += "; supported keys: " + strings.Join(ContainerdConfigKeys(), ", ")
			}
			v.add(AttrPath(p, k), "%s", msg)
			continue
		}
		if !kind.matches(cfg[k]) {
			v.add(AttrPath(p, k), "%s must be %s (got %T)", k, kind, cfg[k])
		}
	}
}

func (k configKind) matches(val any) bool {
	switch k {
	case kindString:
		_, ok := val.(string)
		return ok
	case kindBool:
		_, ok := val.(bool)
		return ok
	case kindStringList:
		switch l := val.(type) {
		case []string:
			return true
		case []any:
			return !slices.ContainsFunc(l, func(e any) bool { _, ok := e.(string); return !ok })
		}
	case kindStringMap:
		switch m := val.(type) {
		case map[string]string:
			return true
		case map[string]any:
			for _, e := range m {
				if _, ok := e.(string); !ok {
					return false
				}
			}
			return true
		case []any: // HCL blocks decoded as a list of one map
			return len(m) > 0
		}
	case kindObjectList:
		switch m := val.(type) {
		case []any, []map[string]any:
			return true
		case map[string]any:
			return len(m) > 0
		}
	case kindObject:
		switch m := val.(type) {
		case map[string]any:
			return true
		case []any:
			return len(m) == 1
		}
	}
	return false
}

// Suggest returns the candidate closest to name by edit distance, if it is
// close enough to be a likely typo, or "".
func Suggest(name string, candidates []string) string {
	best, bestD := "", len(name)/2+2
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
