//go:build linux

package simd

import "syscall"

const mapNoReserve = syscall.MAP_NORESERVE
