package delivery

// RecordSQL is the record statement, for the test of its plan.
const RecordSQL = recordResults
