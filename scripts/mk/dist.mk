# Distribution: cross builds, ARM tests under qemu, .deb packages, tarballs,
# the packaged-install test and the footprint benchmark. See docs/install.md
# and the Footprint/ARM sections of docs/performance.md.
#
#   make cross      dist/edgefn-linux-{amd64,arm64,armv7,armv6} + tarballs
#   make test-arm   sandbox and outbox tests under qemu-aarch64/qemu-arm
#   make deb        dist/edgefn_<version>_{arm64,armhf,amd64}.deb (nfpm)
#   make test-deb   installs the amd64 .deb into a throwaway root and checks it
#   make footprint  binary sizes, idle/load RSS and start-to-ready

DIST          ?= dist
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Debian versions start with a digit: v1.2.3 -> 1.2.3, a bare commit -> 0.0.0~git<commit>.
DEB_VERSION   ?= $(shell echo '$(VERSION)' | sed -E 's/^v([0-9])/\1/; /^[0-9]+\./!s/^/0.0.0~git/; s/-/./g')
CROSS_TARGETS ?= amd64 arm64 armv7 armv6
NFPM          ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

# Debian architecture of each target packaged as a .deb.
DEB_ARCH_amd64 := amd64
DEB_ARCH_arm64 := arm64
DEB_ARCH_armv7 := armhf
DEB_TARGETS    := arm64 armv7 amd64

.PHONY: cross dist deb test-arm test-deb footprint

# Keep the per-target configs between runs (make would delete them as intermediates).
.SECONDARY: $(foreach t,$(CROSS_TARGETS),$(DIST)/config/$(t)/edgefn.yaml)

cross: $(foreach t,$(CROSS_TARGETS),$(DIST)/edgefn_$(VERSION)_linux_$(t).tar.gz)

dist: cross deb

$(DIST)/edgefn-linux-%: FORCE
	VERSION=$(VERSION) GO=$(GO) scripts/cross.sh $* $@

# gpio backend periph on the Pi builds, none on amd64 (no GPIO chip there).
$(DIST)/config/%/edgefn.yaml: configs/edgefn.packaged.yaml
	mkdir -p $(@D)
	if [ "$*" = amd64 ]; then sed 's/^  backend: periph$$/  backend: none/' $< > $@; else cp $< $@; fi

# Tarball for systems without dpkg: scripts/install.sh does what the .deb does.
$(DIST)/edgefn_$(VERSION)_linux_%.tar.gz: $(DIST)/edgefn-linux-% $(DIST)/config/%/edgefn.yaml scripts/install.sh configs/edgefn.service scripts/nfpm/postinst scripts/nfpm/prerm scripts/nfpm/postrm docs/install.md
	rm -rf $(DIST)/stage/$*
	mkdir -p $(DIST)/stage/$*/edgefn_$(VERSION)_linux_$*/maint
	cp $(DIST)/edgefn-linux-$* $(DIST)/stage/$*/edgefn_$(VERSION)_linux_$*/edgefn
	cp $(DIST)/config/$*/edgefn.yaml configs/edgefn.service scripts/install.sh docs/install.md $(DIST)/stage/$*/edgefn_$(VERSION)_linux_$*/
	cp scripts/nfpm/postinst scripts/nfpm/prerm scripts/nfpm/postrm $(DIST)/stage/$*/edgefn_$(VERSION)_linux_$*/maint/
	tar -C $(DIST)/stage/$* --owner=0 --group=0 -czf $@ edgefn_$(VERSION)_linux_$*
	@echo "$@"

deb: $(foreach t,$(DEB_TARGETS),$(DIST)/edgefn_$(DEB_VERSION)_$(DEB_ARCH_$(t)).deb)

define deb_rule
$(DIST)/edgefn_$(DEB_VERSION)_$(DEB_ARCH_$(1)).deb: $(DIST)/edgefn-linux-$(1) $(DIST)/config/$(1)/edgefn.yaml configs/nfpm.yaml configs/edgefn.service scripts/nfpm/postinst scripts/nfpm/prerm scripts/nfpm/postrm docs/install.md examples/go-temp-alert/go-temp-alert.wasm
	EDGEFN_ARCH=$(DEB_ARCH_$(1)) EDGEFN_VERSION=$(DEB_VERSION) EDGEFN_BIN=$(DIST)/edgefn-linux-$(1) \
	EDGEFN_CONFIG=$(DIST)/config/$(1)/edgefn.yaml \
		$(NFPM) package --config configs/nfpm.yaml --packager deb --target $$@
endef
$(foreach t,$(DEB_TARGETS),$(eval $(call deb_rule,$(t))))

## test-arm: the sandbox and outbox tests under qemu (arm64, armv7, armv6).
test-arm: wasm
	scripts/test-arm.sh

## test-deb: install the amd64 .deb (and the tarball) into a throwaway root.
test-deb: $(DIST)/edgefn_$(DEB_VERSION)_amd64.deb $(DIST)/edgefn_$(VERSION)_linux_amd64.tar.gz
	scripts/test-deb.sh $(DIST)/edgefn_$(DEB_VERSION)_amd64.deb $(DIST)/edgefn_$(VERSION)_linux_amd64.tar.gz

## footprint: sizes of the cross builds, RSS idle (after keep_warm: the functions'
## code unloaded) and under MQTT load, start-to-ready.
footprint: wasm $(foreach t,$(CROSS_TARGETS),$(DIST)/edgefn-linux-$(t))
	$(GO) run ./scripts/footprint -bin $(DIST)/edgefn-linux-amd64 -functions examples -keep-warm 10s \
		$(foreach t,$(CROSS_TARGETS),-size $(DIST)/edgefn-linux-$(t))
