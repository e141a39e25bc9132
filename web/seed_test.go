package web_test

import "os"

func readSeed() ([]byte, error) { return os.ReadFile("../demo/london-daily-2025-11-13.txt") }
