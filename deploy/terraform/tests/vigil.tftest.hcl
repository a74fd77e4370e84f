# Offline checks (`terraform test`, Terraform >= 1.7) against a mocked AWS provider: "apply" here
# creates nothing and needs no credentials. They pin the security-relevant shape of the deployment.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b"]
    }
  }

  mock_data "aws_ami" {
    defaults = {
      id = "ami-0123456789abcdef0"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  ssh_allowed_cidr = "203.0.113.0/24"
  ssh_public_key   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBadKeyForTestsOnly test"
  repo_url         = "https://example.invalid/vigil.git"
}

run "only_ssh_from_the_allowed_cidr" {
  command = apply

  assert {
    condition     = aws_vpc_security_group_ingress_rule.ssh.cidr_ipv4 == "203.0.113.0/24"
    error_message = "SSH must be open to ssh_allowed_cidr only"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.ssh.from_port == 22 && aws_vpc_security_group_ingress_rule.ssh.to_port == 22
    error_message = "the only ingress rule must be port 22"
  }

  assert {
    condition     = length(aws_default_security_group.this.ingress) == 0 && length(aws_default_security_group.this.egress) == 0
    error_message = "the VPC's default security group must have no rules"
  }
}

run "instance_hardening" {
  command = apply

  assert {
    condition     = aws_instance.vigil.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 must be required"
  }

  assert {
    condition     = aws_ebs_volume.data.encrypted && aws_instance.vigil.root_block_device[0].encrypted
    error_message = "both volumes must be encrypted"
  }

  assert {
    condition     = length(aws_iam_role_policy_attachment.ssm) == 0
    error_message = "the instance role must carry no policy unless enable_ssm is set"
  }

  assert {
    condition     = strcontains(aws_instance.vigil.user_data, "https://example.invalid/vigil.git") && strcontains(aws_instance.vigil.user_data, "scripts/setup.sh")
    error_message = "user_data must clone the repo and run scripts/setup.sh"
  }
}

run "world_open_ssh_is_rejected" {
  command = plan

  variables {
    ssh_allowed_cidr = "0.0.0.0/0"
  }

  expect_failures = [var.ssh_allowed_cidr]
}

run "services_declare_their_topology" {
  command = apply

  variables {
    services = {
      api = {
        depends_on                 = { postgres = "local" }
        dependency_duration_metric = "api_db_seconds"
        dependency_failures_metric = "api_db_failures_total"
      }
    }
  }

  assert {
    condition     = strcontains(aws_instance.vigil.user_data, "VIGIL_ENTITIES='{\"api\":{") && strcontains(aws_instance.vigil.user_data, "\"postgres\":\"local\"")
    error_message = "user_data must write the services' topology for the Vigil units"
  }
}

run "a_dependency_neither_network_nor_local_is_rejected" {
  command = plan

  variables {
    services = {
      api = {
        depends_on                 = { postgres = "remote" }
        dependency_duration_metric = "api_db_seconds"
        dependency_failures_metric = "api_db_failures_total"
      }
    }
  }

  expect_failures = [var.services]
}
