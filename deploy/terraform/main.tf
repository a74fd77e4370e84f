data "aws_availability_zones" "available" {
  state = "available"
}

# Debian's own AMIs, published by the Debian cloud team's AWS account.
data "aws_ami" "debian12" {
  most_recent = true
  owners      = ["136693071363"]

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

locals {
  az = var.availability_zone != "" ? var.availability_zone : data.aws_availability_zones.available.names[0]
}

# ---- network: one VPC, one public subnet, SSH from one CIDR and nothing else ---------------------

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = "${var.name}-vpc" }
}

# The VPC's default group allows all traffic between its members; take every rule away so nothing
# launched into this VPC by accident inherits it.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${var.name}-default-deny" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${var.name}-igw" }
}

resource "aws_subnet" "public" {
  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.subnet_cidr
  availability_zone       = local.az
  map_public_ip_on_launch = true

  tags = { Name = "${var.name}-public" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }

  tags = { Name = "${var.name}-public" }
}

resource "aws_route_table_association" "public" {
  subnet_id      = aws_subnet.public.id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "vigil" {
  name        = "${var.name}-instance"
  description = "Vigil host: SSH from one CIDR in; HTTP(S) out for apt, git and pip"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.name}-instance" }
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  security_group_id = aws_security_group.vigil.id
  description       = "SSH from the operator network only; every web UI is reached through an SSH tunnel"
  cidr_ipv4         = var.ssh_allowed_cidr
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
}

# Egress is limited to what installing and notifying needs (Debian mirrors, git, PyPI, Slack,
# Apprise targets, an LLM API). The Amazon DNS resolver and Time Sync are not filtered by security
# groups, so they need no rule.
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.vigil.id
  description       = "HTTPS out"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "http" {
  security_group_id = aws_security_group.vigil.id
  description       = "HTTP out (Debian's AMI points apt at http mirrors; packages are signature-checked)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

# ---- IAM: an instance profile that can do nothing ----------------------------------------------
# Vigil makes no AWS API calls, so the role carries no policy unless Session Manager is wanted.
# Having a profile at all keeps the instance from being given a broader one later by hand.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "vigil" {
  name               = "${var.name}-instance"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count      = var.enable_ssm ? 1 : 0
  role       = aws_iam_role.vigil.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "vigil" {
  name = "${var.name}-instance"
  role = aws_iam_role.vigil.name
}

# ---- the instance and its data volume ----------------------------------------------------------

resource "aws_key_pair" "admin" {
  key_name   = "${var.name}-admin"
  public_key = var.ssh_public_key
}

# VIGIL_HOME lives on its own volume so the archive, MLflow store and models survive replacing
# the instance (a new AMI, a bigger type). `terraform destroy` does delete it, after a snapshot.
resource "aws_ebs_volume" "data" {
  availability_zone = local.az
  size              = var.data_volume_gb
  type              = "gp3"
  encrypted         = true
  final_snapshot    = true

  tags = { Name = "${var.name}-home" }
}

resource "aws_instance" "vigil" {
  ami                    = data.aws_ami.debian12.id
  instance_type          = var.instance_type
  subnet_id              = aws_subnet.public.id
  vpc_security_group_ids = [aws_security_group.vigil.id]
  key_name               = aws_key_pair.admin.key_name
  iam_instance_profile   = aws_iam_instance_profile.vigil.name

  # IMDSv2 only, one hop: a process tricked into fetching a URL cannot read instance credentials
  # with a plain GET, and containers on the host cannot reach the metadata service at all.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = var.root_volume_gb
    encrypted   = true
  }

  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    repo_url          = var.repo_url
    repo_ref          = var.repo_ref
    data_volume_id    = aws_ebs_volume.data.id
    install_local_llm = var.install_local_llm
    entities_json     = jsonencode(var.services)
  })
  # user_data runs once, at first boot; changing it must not silently replace a running host.
  user_data_replace_on_change = false

  tags = { Name = var.name }

  lifecycle {
    ignore_changes = [ami]
  }
}

resource "aws_volume_attachment" "data" {
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.vigil.id
}
