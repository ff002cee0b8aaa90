# Autoscaling bounds, disconnect tolerance, a group-level migrate block,
# meta written as a map, and a group service for a task.
job "worker" {
  datacenters = ["edge-*"]
  node_pool   = "edge"

  migrate {
    max_parallel     = 2
    health_check     = "task_states"
    min_healthy_time = "15s"
    healthy_deadline = "2m"
  }

  reschedule {
    delay          = "10s"
    delay_function = "fibonacci"
    max_delay      = "5m"
    unlimited      = true
  }

  group "worker" {
    meta = {
      "queue.name" = "jobs"
      shard        = 3
      debug        = false
    }

    scaling {
      min     = 2
      max     = 20
      enabled = true

      policy {
        evaluation_interval = "30s"
        cooldown            = "2m"

        check "cpu" {
          source = "skiff-apm"
          query  = "avg_cpu"

          strategy "target-value" {
            target = 70
          }
        }
      }
    }

    disconnect {
      lost_after           = "1h"
      stop_on_client_after = "2h"
      replace              = false
      reconcile            = "keep_original"
    }

    shutdown_delay = "5s"

    reschedule {
      attempts = 0
    }

    network {
      port "health" {}
    }

    service {
      name = "worker"
      port = "health"
      task = "worker"

      check {
        type     = "script"
        command  = "/bin/check"
        args     = ["--quick"]
        task     = "worker"
        interval = "30s"
        timeout  = "5s"
      }
    }

    task "worker" {
      driver = "containerd"

      config {
        image = "registry.example.com/worker:0.9"
        args  = ["--queue", "jobs", "--health", ":${NOMAD_PORT_health}"]
      }

      meta {
        tier = "edge"
      }

      resources {
        cpu    = 250
        memory = 200
      }

      shutdown_delay = "3s"
    }
  }
}
