{
  "targets": [
    {
      "target_name": "flowlb_xdp_core",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/object.cc",
        "native/program.cc",
        "native/link.cc",
        "native/map.cc",
        "native/system.cc",
        "native/udp.cc",
        "native/route_watch.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
