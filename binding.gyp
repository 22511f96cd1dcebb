{
  "targets": [
    {
      "target_name": "jitsu_native",
      "sources": ["native/addon.cc", "native/udp.cc", "native/pidwatch.cc", "native/notify.cc", "native/bpf.cc", "native/netlink.cc"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    },
    {
      "target_name": "jitsu-activate",
      "type": "executable",
      "sources": ["native/activate.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=c11", "-D_GNU_SOURCE", "-D_FILE_OFFSET_BITS=64", "-D_TIME_BITS=64"]
    },
    {
      "target_name": "jitsu-preload",
      "type": "shared_library",
      "product_prefix": "",
      "product_dir": "<(PRODUCT_DIR)",
      "sources": ["native/preload.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=c11", "-D_GNU_SOURCE", "-fPIC", "-fvisibility=hidden"],
      "libraries": ["-ldl"]
    }
  ]
}
