#!/bin/sh
# Installs the system libraries `make bench-gpu` needs (Dawn in Node talks to
# the GPU through Vulkan): the Vulkan loader, and for NVIDIA's driver the GLVND
# libraries it links against. Debian/Ubuntu, as root.
#
#   sh tools/bench/setup-gpu.sh            online: apt-get install
#   sh tools/bench/setup-gpu.sh DIR        offline: unpack the .debs in DIR
#                                          (fetch them elsewhere with
#                                          `apt-get download libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libgles2 libopengl0`)
#
# Then point the loader at the driver if it does not find it itself, e.g. for
# NVIDIA containers: export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
# (check with `ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d`).
# Without a GPU, Debian's chromium package ships SwiftShader:
# export VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
set -eu
PKGS="libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libgles2 libopengl0"
if [ $# -ge 1 ]; then
  for f in "$1"/*.deb; do dpkg -x "$f" /; done
  ldconfig
else
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PKGS
fi
ldconfig -p | grep -q libvulkan.so.1 && echo "setup-gpu: Vulkan loader installed" || { echo "setup-gpu: no libvulkan.so.1 after install"; exit 1; }
