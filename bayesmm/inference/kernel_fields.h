/* The kernel's program header: the field numbers of bayesmm/inference/kernel.py's _FIELDS.
 * Written from that tuple; tests/test_kernel.py checks that they still agree. */

#define N_DIM 0
#define P 1
#define Q 2
#define J 3
#define T 4
#define NF 5
#define NC 6
#define N_EXTRA 7
#define SIGMA 8
#define O_FAMILY 9
#define O_TRANSFORM 10
#define O_THETA 11
#define O_SD 12
#define O_TSTART 13
#define O_TSIZE 14
#define O_TKIND 15
#define O_TCPC 16
#define O_TCOR 17
#define O_FIXEF 18
#define O_GATHER 19
#define F_P1 20
#define F_P2 21
#define F_P3 22
#define F_CONST 23
#define F_MULT 24
#define F_CENTER 25
#define F_INTERCEPT 26
#define F_N 27
#define F_THETA_LS 28
#define F_RSS 29
#define F_DTD 30
#define F_ZTZ 31
#define F_ZTE 32
#define F_ZTD 33
#define HEADER 34
