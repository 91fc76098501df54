//go:build !linux

package triggers

import (
	"context"
	"errors"
)

// File triggers use Linux's inotify (a file closed after writing) and
// renameat2; elsewhere a watch reports this error and stays idle.
var errFilesUnsupported = errors.New("file triggers need Linux (inotify)")

type watchedDir struct{}

type openFile struct{ size int64 }

func openWatchedDir(string) (*watchedDir, error) { return nil, errFilesUnsupported }

func (*watchedDir) stopWatch()                                        {}
func (*watchedDir) close()                                            {}
func (*watchedDir) watch(context.Context, func(string), func()) error { return errFilesUnsupported }
func (*watchedDir) scan(func(string)) error                           { return errFilesUnsupported }
func (*watchedDir) open(string, bool) (*openFile, error)              { return nil, errFilesUnsupported }
func (*watchedDir) finish(*openFile, string) error                    { return errFilesUnsupported }
func (*watchedDir) moveName(string, string) error                     { return errFilesUnsupported }
func (*openFile) read(int64) ([]byte, error)                          { return nil, errFilesUnsupported }
func (*openFile) close()                                              {}
