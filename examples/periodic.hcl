# A periodic batch job: runs every 15 minutes, never two at once.
#
#   skiff job run examples/periodic.hcl

job "cleanup" {
  datacenters = ["*"]
  type        = "batch"

  periodic {
    crons            = ["*/15 * * * *"]
    prohibit_overlap = true
  }

  group "cleanup" {
    task "cleanup" {
      driver = "containerd"

      config {
        image   = "127.0.0.1:5000/skiff/busybox:latest"
        command = "sh"
        args    = ["-c", "date; echo cleaning up"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
