# Spread over datacenters and racks, and weighted preferences.
job "cache" {
  datacenters = ["us-east-1", "us-west-2"]

  spread {
    attribute = "${node.datacenter}"
    weight    = 100

    target "us-east-1" {
      percent = 60
    }

    target "us-west-2" {
      percent = 40
    }
  }

  affinity {
    attribute = "${node.class}"
    value     = "memory-optimized"
    weight    = 80
  }

  group "cache" {
    count = 6

    spread {
      attribute = "${meta.rack}"
    }

    affinity {
      attribute = "${meta.storage}"
      operator  = "set_contains_any"
      value     = "ssd,nvme"
      weight    = -50
    }

    task "memcached" {
      driver = "containerd"

      affinity {
        attribute = "${attr.cpu.arch}"
        operator  = "regexp"
        value     = "^arm"
        weight    = 25
      }

      config {
        image = "memcached:1.6"
        args  = ["-m", "1024"]
      }

      resources {
        cpu    = 300
        memory = 1100
      }
    }
  }
}
