# Constraints with every operator, at job, group and task level, in both
# the operator = "..." form and Nomad's shorthands.
job "placement" {
  datacenters = ["dc1", "dc2"]

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  constraint {
    attribute = "${attr.cpu.arch}"
    operator  = "=="
    value     = "amd64"
  }

  constraint {
    attribute = "${node.class}"
    operator  = "!="
    value     = "spot"
  }

  constraint {
    attribute = "${attr.cpu.numcores}"
    operator  = ">="
    value     = "4"
  }

  constraint {
    attribute = "${attr.memory.totalbytes}"
    operator  = ">"
    value     = "4000000000"
  }

  constraint {
    attribute = "${meta.generation}"
    operator  = "<"
    value     = "9"
  }

  constraint {
    attribute = "${meta.load}"
    operator  = "<="
    value     = "5"
  }

  group "app" {
    count = 3

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    constraint {
      distinct_property = "${meta.rack}"
      value             = "2"
    }

    constraint {
      attribute = "${attr.os.name}"
      operator  = "regexp"
      value     = "^(ubuntu|debian)$"
    }

    constraint {
      attribute = "${attr.kernel.version}"
      version   = ">= 5.10"
    }

    constraint {
      attribute = "${attr.os.version}"
      operator  = "semver"
      value     = ">= 22.4.0"
    }

    constraint {
      attribute = "${meta.features}"
      set_contains = "ssd,nvme"
    }

    constraint {
      attribute = "${meta.zones}"
      operator  = "set_contains_any"
      value     = "a,b"
    }

    constraint {
      attribute = "${meta.tags}"
      operator  = "set_contains_all"
      value     = "prod,pci"
    }

    constraint {
      attribute = "${meta.gpu}"
      operator  = "is_not_set"
    }

    constraint {
      distinct_hosts = false
    }

    task "app" {
      driver = "containerd"

      constraint {
        attribute = "${attr.unique.storage.volume}"
        operator  = "is_set"
      }

      constraint {
        attribute = "${node.pool}"
        operator  = "not"
        value     = "edge"
      }

      constraint {
        attribute = "${attr.os.name}"
        operator  = "is"
        value     = "ubuntu"
      }

      config {
        image = "registry.example.com/app:3"
      }
    }
  }
}
