# A nightly batch job that must not overlap with itself.
job "nightly-report" {
  type        = "batch"
  datacenters = ["dc1"]
  node_pool   = "batch"
  all_at_once = true

  periodic {
    cron             = "30 2 * * *"
    prohibit_overlap = true
    time_zone        = "Europe/Paris"
  }

  reschedule {
    attempts       = 2
    interval       = "6h"
    delay          = "1m"
    delay_function = "constant"
    unlimited      = false
  }

  group "report" {
    ephemeral_disk {
      size = 500
    }

    max_run_duration = "2h"

    task "build" {
      driver = "containerd"
      user   = "nobody"

      config {
        image   = "registry.example.com/tools/report:1.9"
        command = "/bin/report"
        args    = ["--since", "24h", "--out", "${NOMAD_ALLOC_DIR}/report.csv"]
      }

      logs {
        max_files     = 3
        max_file_size = 20
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
