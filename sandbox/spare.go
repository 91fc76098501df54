package sandbox

// Spare instances. A function with isolation fresh gets a new instance for
// every event; instantiating one (module instance, WASI context, memory) is
// most of a fresh invocation's cost. So instances are made ahead, in the
// background, and an event takes one that has never run: it still runs
// _initialize and its handler in a new instance, only the instantiation is
// off its path. A spare is never reused: the event that takes it closes it.
//
// How many: as many as the most invocations that were in flight at once
// since the function was last quiet, and never so many that spares plus
// invocations exceed limits.concurrency; while one is being made it holds a
// slot of the concurrency semaphore, so instances alive stay within the
// limit. Spares are dropped after limits.keep_warm without an event (reap).
// Commands are not made ahead: their stdin and environment are the event's.

// claimRefillLocked reports whether a refill should start, and if so marks
// it started (the caller then runs go f.refill()). f.mu must be held.
func (f *Function) claimRefillLocked() bool {
	if !f.fresh || f.shape != ShapeReactor || f.refilling || f.closed || f.compiled == nil || !f.needSpareLocked() {
		return false
	}
	f.refilling = true
	f.inflight.Add(1)
	return true
}

// needSpareLocked reports whether one more spare is wanted. f.mu must be
// held.
func (f *Function) needSpareLocked() bool {
	n := len(f.spare) + f.creating
	return n < max(1, f.peak) && n+f.active < f.spec.Limits.Concurrency
}

// refill makes spares until enough exist, one at a time.
func (f *Function) refill() {
	defer f.inflight.Done()
	for {
		f.mu.Lock()
		if f.closed || f.compiled == nil || !f.needSpareLocked() {
			f.refilling = false
			f.mu.Unlock()
			return
		}
		select {
		case f.sem <- struct{}{}:
		default: // every slot is taken by an invocation
			f.refilling = false
			f.mu.Unlock()
			return
		}
		f.creating++
		f.alive++
		cm := f.compiled
		f.mu.Unlock()
		inst, err := f.instantiate(cm, f.r.base)
		<-f.sem
		f.mu.Lock()
		f.creating--
		if err != nil {
			f.refilling = false
			f.mu.Unlock()
			f.r.log.Warn("sandbox: instantiate a spare", "function", f.spec.Name, "version", f.spec.Version, "err", err)
			return
		}
		// Close (which waits for this goroutine) closes the spares.
		f.spare = append(f.spare, inst)
		f.armReaperLocked()
		f.mu.Unlock()
	}
}
