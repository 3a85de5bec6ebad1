// Command render regenerates the mixin's generated sources and rendered
// outputs; with -fmt it formats the jsonnet sources like jsonnetfmt -i.
package main

import (
	"flag"
	"fmt"
	"os"

	mixin "github.com/open-autoglm/autoglm-monitor/mixins/autoglm-mixin"
)

func main() {
	dir := flag.String("dir", ".", "mixin directory")
	fmtOnly := flag.Bool("fmt", false, "format the jsonnet sources in place instead of rendering")
	flag.Parse()
	if *fmtOnly {
		changed, err := mixin.FormatSources(*dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "format mixin:", err)
			os.Exit(1)
		}
		for _, c := range changed {
			fmt.Println(c)
		}
		return
	}
	if err := mixin.Generate(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "render mixin:", err)
		os.Exit(1)
	}
}
