# A parameterized batch job, dispatched with a payload and metadata.
job "transcode" {
  type        = "batch"
  datacenters = ["dc1"]

  parameterized {
    payload       = "required"
    meta_required = ["input"]
    meta_optional = ["profile", "priority"]
  }

  group "transcode" {
    restart {
      attempts = 1
      mode     = "fail"
    }

    task "ffmpeg" {
      driver = "containerd"

      config {
        image = "jrottenberg/ffmpeg:6.1-alpine"
        args  = ["-i", "${NOMAD_META_input}", "-preset", "${NOMAD_META_profile}", "/alloc/out.mp4"]
      }

      resources {
        cores  = 2
        memory = 2048
      }
    }
  }
}
