package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// reportCmd is "berth-bench report -dir DIR": re-render results.md and
// gc-time.png from DIR/results.json, without measuring anything.
func reportCmd(args []string) error {
	fl := flag.NewFlagSet("report", flag.ContinueOnError)
	dir := fl.String("dir", "bench", "directory holding results.json")
	if err := fl.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*dir, "results.json"))
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	num := func(k string) int {
		f, _ := res.Options[k].(float64)
		return int(f)
	}
	o := options{fixed: num("fixed_garbage"), clients: num("clients"), bigMiB: num("big_mib")}
	if rs, ok := res.Options["registries"].([]any); ok {
		for _, r := range rs {
			o.registries = append(o.registries, fmt.Sprint(r))
		}
	}
	md := report(o, &res)
	if err := os.WriteFile(filepath.Join(*dir, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return plotGC(&res, columns(o, &res), filepath.Join(*dir, "gc-time.png"))
}
