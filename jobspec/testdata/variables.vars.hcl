regions   = ["dc1", "dc2"]
resources = { cpu = 250, memory = 512 }
replicas  = 2
