#!/bin/sh
# ACPI power button (QMP system_powerdown): stop serving and power off now; nothing to sync.
echo "jitsu-guest: power button, powering off" > /dev/console
poweroff -f
