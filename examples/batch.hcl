# A batch job: three busybox tasks that each print where they run and
# exit. Batch allocations stop when their task ends successfully.
#
#   skiff job run examples/batch.hcl
#   skiff job status hello

job "hello" {
  datacenters = ["*"]
  type        = "batch"

  group "hello" {
    count = 3

    restart {
      attempts = 1
      delay    = "5s"
    }

    task "hello" {
      driver = "containerd"

      config {
        image   = "127.0.0.1:5000/skiff/busybox:latest"
        command = "sh"
        args    = ["-c", "echo hello from allocation ${NOMAD_ALLOC_INDEX} of ${NOMAD_JOB_NAME}; sleep 2"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
