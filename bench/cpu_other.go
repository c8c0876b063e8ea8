// SPDX-License-Identifier: Apache-2.0

//go:build !unix

package main

import (
	"log"
	"time"
)

func processCPU() time.Duration {
	log.Fatal("bench: measuring CPU time needs a Unix system")
	return 0
}
