{
  "targets": [{
    "target_name": "fadvise",
    "sources": ["fadvise.c"],
    "cflags": ["-O2", "-Wall"]
  }]
}
