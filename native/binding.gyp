{
  "targets": [
    {
      "target_name": "keyward_nodump",
      "sources": ["nodump.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
