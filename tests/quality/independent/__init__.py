"""Correct L-BFGS written from the literature (Nocedal & Wright 2nd ed. Alg. 7.4/7.5 and §3.5; Byrd, Nocedal &
Schnabel 1994), sharing no code with torch.optim.LBFGS or the project's reference: fixtures that a correct
optimizer with conventions other than torch's passes level ``properties``."""
