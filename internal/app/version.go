package app

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags at release time:
//
//	go build -ldflags "-X github.com/berth/berth/internal/app.version=v1.2.3 \
//	    -X github.com/berth/berth/internal/app.commit=$(git rev-parse HEAD)" ./cmd/berth
//
// When unset they come from the build info (module version, vcs.revision).
var (
	version string
	commit  string
)

// VersionInfo identifies a berth build.
type VersionInfo struct {
	Version   string // release version, or the module version, or "devel"
	Commit    string // VCS revision, "-dirty" when built from a modified tree, or "unknown"
	GoVersion string // the Go toolchain that built the binary
}

// Version returns this build's version information.
func Version() VersionInfo {
	v := VersionInfo{Version: version, Commit: commit, GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if ok {
		v.GoVersion = info.GoVersion
		if v.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v.Version = info.Main.Version
		}
		if v.Commit == "" {
			var rev string
			var dirty bool
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" {
				if len(rev) > 12 {
					rev = rev[:12]
				}
				if dirty {
					rev += "-dirty"
				}
				v.Commit = rev
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}
