# A web service with ports, a service and checks, and a rolling update with
# a canary that must be promoted.
job "frontend" {
  region      = "eu"
  namespace   = "shop"
  datacenters = ["eu-west-1a", "eu-west-1b"]
  type        = "service"
  priority    = 70

  meta {
    team  = "storefront"
    owner = "web@example.com"
  }

  update {
    max_parallel      = 2
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
    canary            = 1
    stagger           = "15s"
  }

  group "frontend" {
    count = 4

    network {
      mode     = "bridge"
      hostname = "frontend"

      port "http" {
        to = 8080
      }

      port "metrics" {
        static = 9102
        to     = 9102
      }
    }

    service {
      name        = "frontend"
      port        = "http"
      provider    = "skiff"
      tags        = ["web", "v2"]
      canary_tags = ["canary"]
      meta {
        version = "2.4.1"
      }

      check {
        name     = "alive"
        type     = "http"
        path     = "/healthz"
        method   = "GET"
        interval = "10s"
        timeout  = "2s"

        header {
          Host          = ["frontend.internal"]
          Authorization = ["Bearer static-probe"]
        }
      }

      check {
        type                     = "tcp"
        port                     = "http"
        interval                 = "30s"
        timeout                  = "5s"
        success_before_passing   = 2
        failures_before_critical = 3
      }
    }

    service {
      name = "frontend-metrics"
      port = "metrics"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "25s"
      mode     = "delay"
    }

    task "web" {
      driver = "containerd"

      config {
        image = "registry.example.com/shop/frontend:2.4.1"
        args  = ["--listen", ":8080", "--metrics", ":${NOMAD_PORT_metrics}"]
        ports = ["http", "metrics"]
      }

      env {
        LOG_LEVEL = "info"
        WORKERS   = 4
      }

      resources {
        cpu        = 500
        memory     = 256
        memory_max = 512
      }

      kill_timeout = "20s"
      kill_signal  = "SIGTERM"
    }
  }
}
