package structs

// MessageType is the first byte of every raft log entry and says how to
// decode the msgpack body that follows.
type MessageType uint8

// Log entry types. Values are part of the on-disk format: append, never
// renumber.
const (
	JobRegisterRequestType       MessageType = 0
	JobDeregisterRequestType     MessageType = 1
	EvalUpdateRequestType        MessageType = 2
	EvalDeleteRequestType        MessageType = 3
	NodeRegisterRequestType      MessageType = 4
	NodeDeregisterRequestType    MessageType = 5
	NodeUpdateStatusRequestType  MessageType = 6
	AllocUpdateRequestType       MessageType = 7
	AllocClientUpdateRequestType MessageType = 8
	ApplyPlanResultsRequestType  MessageType = 9
	DeploymentUpsertRequestType  MessageType = 10
	NoopRequestType              MessageType = 11
	NodeUpdateEligibilityType    MessageType = 12
	NodeUpdateDrainType          MessageType = 13
	AllocDesiredTransitionType   MessageType = 14
	DeploymentUpdateRequestType  MessageType = 15
	// CompressedEntryType wraps another entry, type byte included,
	// compressed with S2 (EncodeEntry, DecodeEntry).
	CompressedEntryType MessageType = 16
	// BatchEntryType holds several plain entries committed as one
	// (AppendBatchEntry, SplitBatch).
	BatchEntryType MessageType = 17
)

// IgnoreUnknownTypeFlag marks an entry that servers which do not know its
// type may skip, so that new optional entry types can be written during a
// rolling upgrade. Entries without it stop a server that cannot decode them.
const IgnoreUnknownTypeFlag MessageType = 128
