variable "project_id" {
  type        = string
  description = "Project of the database."
}

variable "location" {
  type        = string
  description = "Firestore location (multi-region such as eur3 or nam5, or a region)."
}

variable "database_name" {
  type        = string
  description = "Database id; the status engine uses the default database unless FIRESTORE_DATABASE says otherwise."
  default     = "(default)"
}

variable "collection" {
  type        = string
  description = "Collection of status records: one document per event."
  default     = "events"
}
