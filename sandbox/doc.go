// Package sandbox runs one event through one WebAssembly function version on wazero and returns
// its outcome, its effects and its logs; it applies nothing itself. It validates and instruments
// modules at load time, caches compiled code on disk, pools warm instances, enforces memory, time
// and output limits, and serves the edgefn host API (ABI v1) guarded by the function's grants.
package sandbox
