/* Whether qemu can run guests with KVM on this machine.
 *
 * /dev/kvm existing is not enough: on some hosts (nested virtualisation with
 * an odd CPU model) KVM runs real-mode code but a Linux kernel never gets past
 * its decompressor, and a qemu started there spins without a word. The only
 * trustworthy answer is a boot: the probe starts the given kernel under
 * `qemu -accel kvm` and waits a few seconds for its banner on the serial
 * console. */
#pragma once

/* Returns 1 when KVM boots kernel, 0 when it does not (or /dev/kvm is
 * missing), a negative errno when the probe could not run. The answer holds
 * until the next reboot of the host; with cache_dir set it is kept there
 * (file kvm-probe, keyed by the boot id) so later builds skip the probe. */
int accel_kvm_usable(const char *kernel, const char *cache_dir);
