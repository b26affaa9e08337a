terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.30"
    }
  }

  # Partial configuration: the bucket is given at init time, because it is
  # named after the project (docs/deployment.md, "From an empty project"):
  #   terraform init -backend-config="bucket=${PROJECT_ID}-tfstate"
  backend "gcs" {
    prefix = "eventrelay/dev"
  }
}

provider "google" {
  project = var.project_id
  region  = var.primary_region

  default_labels = {
    app        = "eventrelay"
    env        = "dev"
    managed-by = "terraform"
  }
}
