package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway"
)

func agentAction(c *cli.Context, cfg *gateway.Config) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch c.String("log-format") {
	case "text":
		h = slog.NewTextHandler(c.App.ErrWriter, opts)
	case "json":
		h = slog.NewJSONHandler(c.App.ErrWriter, opts)
	default:
		return usagef("--log-format %q: use text or json", c.String("log-format"))
	}
	log := slog.New(h)
	a, err := gateway.NewAgent(cfg, log)
	if err != nil {
		return err
	}
	a.Version = version
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		select {
		case r := <-a.Ready():
			w := c.App.Writer
			fmt.Fprintf(w, "edgefn agent %s ready\n", cfg.GatewayID)
			fmt.Fprintf(w, "  admin API:   %s\n", r.AdminURL)
			fmt.Fprintf(w, "  API token:   %s (mode 0600)\n", r.TokenFile)
			if r.Fingerprint != "" {
				fmt.Fprintf(w, "  certificate: %s\n", r.Fingerprint)
			}
			if r.BrokerAddr != "" {
				fmt.Fprintf(w, "  MQTT broker: %s (embedded)\n", r.BrokerAddr)
			}
			fmt.Fprintf(w, "  data dir:    %s\n", cfg.DataDir)
			fmt.Fprintf(w, "log in from a workstation:\n  edgefn login %s --token \"$(cat %s)\"", r.AdminURL, r.TokenFile)
			if r.Fingerprint != "" {
				fmt.Fprintf(w, " --fingerprint %s", r.Fingerprint)
			}
			fmt.Fprintln(w)
		case <-c.Context.Done():
			return
		}
		for {
			select {
			case <-hup:
				// The config is read again: the log level applies
				// now, other changes are reported for a restart.
				next, err := gateway.LoadConfig(c.String("config"))
				if err != nil {
					log.Error("reload: config refused, keeping the running one", "err", err)
					next = nil
				}
				a.Reload(c.Context, next, level)
			case <-c.Context.Done():
				return
			}
		}
	}()
	if err := a.Run(c.Context); err != nil {
		return err
	}
	return nil
}

// configFlag is --config, the agent config file, for the commands that run
// on the device.
func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"EDGEFN_CONFIG"}, Usage: "agent config file (YAML)"}
}

// onDevice is the action of a command run on the device, next to the agent:
// it takes no arguments and reads the agent config that --config
// (configFlag) names.
func onDevice(action func(*cli.Context, *gateway.Config) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() > 0 {
			return usagef("%s takes no arguments, got %q", commandPath(c), c.Args().First())
		}
		cfg, err := gateway.LoadConfig(c.String("config"))
		if err != nil {
			return err
		}
		return action(c, cfg)
	}
}
