package target

//go:generate go tool genqlient genqlient.yaml
