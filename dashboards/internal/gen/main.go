// Command gen writes the generated dashboards to a directory.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/open-autoglm/autoglm-monitor/dashboards"
)

func main() {
	out := flag.String("out", "json", "directory to write the dashboard JSON files to")
	flag.Parse()
	if err := dashboards.Write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "generate dashboards:", err)
		os.Exit(1)
	}
}
