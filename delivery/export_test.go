package delivery

// LeaseJobsSQL is the lease statement, for TestLeasePlan's EXPLAIN.
const LeaseJobsSQL = leaseJobs
