# Session table for dynamostore, with IAM policies for the three kinds of
# principal that use it. Attach the policies to your roles with
# aws_iam_role_policy_attachment.

variable "table_name" {
  description = "Name of the session table, as passed to dynamostore.NewStore"
  type        = string
  default     = "sessions"
}

resource "aws_dynamodb_table" "sessions" {
  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }

  ttl {
    attribute_name = "exp"
    enabled        = true
  }

  lifecycle {
    # Sessions are disposable, but replacing the table signs every user out.
    prevent_destroy = true
  }
}

# For the application: load, save and delete sessions.
resource "aws_iam_policy" "session_store" {
  name_prefix = "dynamostore-store-"
  description = "dynamostore Store on the session table"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "SessionStore"
      Effect   = "Allow"
      Action   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"]
      Resource = aws_dynamodb_table.sessions.arn
    }]
  })
}

# For whatever runs the reaper: the application itself unless its
# ReaperOptions.Interval is negative, or a scheduled job calling Reap.
resource "aws_iam_policy" "session_reaper" {
  name_prefix = "dynamostore-reaper-"
  description = "dynamostore reaper on the session table"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "SessionReaper"
        Effect   = "Allow"
        Action   = ["dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = aws_dynamodb_table.sessions.arn
      },
      {
        Sid       = "SessionReaperLease"
        Effect    = "Allow"
        Action    = ["dynamodb:UpdateItem"]
        Resource  = aws_dynamodb_table.sessions.arn
        Condition = { "ForAllValues:StringEquals" = { "dynamodb:LeadingKeys" = ["lease#reaper"] } }
      },
    ]
  })
}

# For operators running cmd/dynamostore.
resource "aws_iam_policy" "session_cli" {
  name_prefix = "dynamostore-cli-"
  description = "dynamostore operator CLI on the session table"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "SessionTableAdmin"
        Effect   = "Allow"
        Action   = ["dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:UpdateTable", "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive"]
        Resource = aws_dynamodb_table.sessions.arn
      },
      {
        Sid      = "SessionTableCleanup"
        Effect   = "Allow"
        Action   = ["dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = aws_dynamodb_table.sessions.arn
      },
      {
        Sid       = "SessionReaperLease"
        Effect    = "Allow"
        Action    = ["dynamodb:UpdateItem"]
        Resource  = aws_dynamodb_table.sessions.arn
        Condition = { "ForAllValues:StringEquals" = { "dynamodb:LeadingKeys" = ["lease#reaper"] } }
      },
      {
        Sid      = "SessionOwnerIndex"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = "${aws_dynamodb_table.sessions.arn}/index/owner-index"
      },
    ]
  })
}

output "session_table_name" {
  value = aws_dynamodb_table.sessions.name
}

output "session_table_arn" {
  value = aws_dynamodb_table.sessions.arn
}

output "session_store_policy_arn" {
  value = aws_iam_policy.session_store.arn
}

output "session_reaper_policy_arn" {
  value = aws_iam_policy.session_reaper.arn
}

output "session_cli_policy_arn" {
  value = aws_iam_policy.session_cli.arn
}
