# A system job: one node exporter per Linux node, updated ten nodes at a
# time.
job "node-exporter" {
  type        = "system"
  datacenters = ["*"]
  priority    = 90

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  update {
    max_parallel = 10
    stagger      = "5s"
  }

  group "exporter" {
    network {
      port "metrics" {
        static = 9100
      }
    }

    service {
      port = "metrics"
      tags = ["prometheus"]
    }

    task "node-exporter" {
      driver = "containerd"

      config {
        image      = "quay.io/prometheus/node-exporter:v1.8.2"
        args       = ["--path.rootfs=/host", "--web.listen-address=:${NOMAD_PORT_metrics}"]
        privileged = false
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
