//===- GaussianProcessTest.cpp - GP against closed-form cases ----*- C++ -*-===//

#include "mixq/Search/GaussianProcess.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mixq::search;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

GPFitOptions fixed() {
  GPFitOptions o;
  o.optimize = false;
  return o;
}

/// Two points x = 0 and x = 1 with targets +1 and -1 (already standard).
struct TwoPoints {
  MatrixXd x = (MatrixXd(2, 1) << 0.0, 1.0).finished();
  VectorXd y = (VectorXd(2) << 1.0, -1.0).finished();
  GPHyperparameters h{0.7, 1.3, 0.05};
  double e() const { return std::exp(-1.0 / (2 * h.lengthscale * h.lengthscale)); }
  double l1() const { return h.signalVariance * (1 + e()) + h.noiseVariance; }
  double l2() const { return h.signalVariance * (1 - e()) + h.noiseVariance; }
  GaussianProcess fit() const {
    GaussianProcess gp;
    gp.setInputBounds(VectorXd::Zero(1), VectorXd::Ones(1));
    EXPECT_FALSE(bool(gp.fit(x, y, fixed(), h)));
    return gp;
  }
};

TEST(GaussianProcess, PosteriorMatchesTwoPointClosedForm) {
  TwoPoints t;
  GaussianProcess gp = t.fit();
  MatrixXd xs = (MatrixXd(1, 1) << 0.0).finished();
  VectorXd mean, var;
  gp.predict(xs, mean, var);
  double sf2 = t.h.signalVariance, e = t.e();
  // K^-1 y = y / l2 (y is the eigenvector [1, -1]).
  EXPECT_NEAR(mean[0], sf2 * (1 - e) / t.l2(), 1e-12);
  double quad = sf2 * sf2 * (1 + e) * (1 + e) / (2 * t.l1()) +
                sf2 * sf2 * (1 - e) * (1 - e) / (2 * t.l2());
  EXPECT_NEAR(var[0], sf2 - quad, 1e-12);
}

TEST(GaussianProcess, LogMarginalLikelihoodMatchesClosedForm) {
  TwoPoints t;
  GaussianProcess gp = t.fit();
  double expected = -0.5 * 2.0 / t.l2() - 0.5 * std::log(t.l1() * t.l2()) -
                    std::log(2 * M_PI);
  EXPECT_NEAR(gp.logMarginalLikelihood(t.h), expected, 1e-12);
}

TEST(GaussianProcess, GradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> n(0, 1);
  MatrixXd x(12, 3);
  VectorXd y(12);
  for (int i = 0; i < 12; ++i) {
    for (int j = 0; j < 3; ++j)
      x(i, j) = std::abs(n(rng));
    y[i] = std::sin(3 * x(i, 0)) + x(i, 1) + 0.1 * n(rng);
  }
  GaussianProcess gp;
  ASSERT_FALSE(bool(gp.fit(x, y, fixed())));
  GPHyperparameters h{0.4, 0.8, 0.02};
  Eigen::Vector3d g;
  gp.logMarginalLikelihood(h, &g);
  double eps = 1e-6;
  for (int k = 0; k < 3; ++k) {
    GPHyperparameters hp = h, hm = h;
    double *fp = k == 0 ? &hp.lengthscale : k == 1 ? &hp.signalVariance
                                                   : &hp.noiseVariance;
    double *fm = k == 0 ? &hm.lengthscale : k == 1 ? &hm.signalVariance
                                                   : &hm.noiseVariance;
    *fp *= std::exp(eps);
    *fm *= std::exp(-eps);
    double fd = (gp.logMarginalLikelihood(hp) - gp.logMarginalLikelihood(hm)) /
                (2 * eps);
    EXPECT_NEAR(g[k], fd, 1e-5 * (1 + std::abs(fd))) << "component " << k;
  }
}

TEST(GaussianProcess, InterpolatesNoiselessDataAndRevertsFarAway) {
  MatrixXd x(5, 1);
  VectorXd y(5);
  for (int i = 0; i < 5; ++i) {
    x(i, 0) = i / 4.0;
    y[i] = std::cos(4 * x(i, 0)) * 3 + 10;
  }
  GaussianProcess gp;
  gp.setInputBounds(VectorXd::Zero(1), VectorXd::Ones(1));
  ASSERT_FALSE(bool(gp.fit(x, y, fixed(), {0.3, 1.0, 1e-10})));
  VectorXd mean, var;
  gp.predict(x, mean, var);
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(mean[i], y[i], 1e-4);
    EXPECT_NEAR(var[i], 0.0, 1e-4);
  }
  // Far from the data: the prior, i.e. the targets' mean and variance.
  MatrixXd far = (MatrixXd(1, 1) << 50.0).finished();
  gp.predict(far, mean, var);
  double mu = y.mean(), v = (y.array() - mu).square().mean();
  EXPECT_NEAR(mean[0], mu, 1e-9);
  EXPECT_NEAR(var[0], v, 1e-9);
}

TEST(GaussianProcess, FittingMaximisesTheMarginalLikelihood) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> n(0, 0.05);
  MatrixXd x(30, 2);
  VectorXd y(30);
  for (int i = 0; i < 30; ++i) {
    x(i, 0) = u(rng);
    x(i, 1) = u(rng);
    y[i] = std::sin(6 * x(i, 0)) + 0.5 * x(i, 1) + n(rng);
  }
  GaussianProcess gp;
  ASSERT_FALSE(bool(gp.fit(x, y)));
  GPHyperparameters best = gp.hyperparameters();
  double fitted = gp.logMarginalLikelihood(best);
  // No point of a coarse grid does better.
  for (double l : {0.05, 0.1, 0.2, 0.4, 0.8, 1.6})
    for (double sf : {0.1, 0.5, 1.0, 2.0, 5.0})
      for (double sn : {1e-4, 1e-3, 1e-2, 0.1})
        EXPECT_LE(gp.logMarginalLikelihood({l, sf, sn}), fitted + 1e-6)
            << l << " " << sf << " " << sn;
  // The noise found is near the true noise variance (0.05^2 / var(y)).
  double vy = (y.array() - y.mean()).square().mean();
  EXPECT_GT(best.noiseVariance, 0.1 * 0.0025 / vy);
  EXPECT_LT(best.noiseVariance, 10 * 0.0025 / vy);
}

TEST(GaussianProcess, SinglePrecisionKernelAgreesWithDouble) {
  std::mt19937_64 rng(8);
  std::uniform_int_distribution<int> level(0, 3);
  MatrixXd x(40, 16), xs(3000, 16);
  VectorXd y(40);
  for (int i = 0; i < 40; ++i) {
    for (int j = 0; j < 16; ++j)
      x(i, j) = level(rng) / 3.0;
    y[i] = std::sin(2 * x.row(i).head(4).sum()) + x.row(i).tail(12).mean();
  }
  for (int i = 0; i < 3000; ++i)
    for (int j = 0; j < 16; ++j)
      xs(i, j) = level(rng) / 3.0;
  xs.topRows(40) = x; // includes the training points (smallest variance)
  GaussianProcess gp;
  gp.setInputBounds(VectorXd::Zero(16), VectorXd::Ones(16));
  ASSERT_FALSE(bool(gp.fit(x, y)));
  VectorXd m1, v1, m2, v2;
  gp.predict(xs, m1, v1);
  gp.setSinglePrecisionKernel(true);
  gp.predict(xs, m2, v2);
  double scale = (y.array() - y.mean()).abs().maxCoeff();
  EXPECT_LT((m1 - m2).cwiseAbs().maxCoeff(), 1e-4 * scale);
  EXPECT_LT((v1 - v2).cwiseAbs().maxCoeff(), 1e-4 * scale * scale);
}

TEST(GaussianProcess, RejectsBadInput) {
  GaussianProcess gp;
  MatrixXd x(2, 1);
  x << 0, 1;
  VectorXd y(3);
  y << 1, 2, 3;
  llvm::Error mismatch = gp.fit(x, y);
  ASSERT_TRUE(bool(mismatch));
  EXPECT_NE(llvm::toString(std::move(mismatch)).find("as many"),
            std::string::npos);
  VectorXd ynan(2);
  ynan << 1, NAN;
  llvm::Error err = gp.fit(x, ynan);
  ASSERT_TRUE(bool(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("finite"), std::string::npos);
}

TEST(Acquisition, ExpectedImprovementClosedForms) {
  // z = 0: EI = sigma * phi(0).
  EXPECT_NEAR(expectedImprovement(2.0, 1.0, 2.0), 0.3989422804014327, 1e-12);
  // z = 1: EI = Phi(1) + phi(1).
  EXPECT_NEAR(expectedImprovement(3.0, 1.0, 2.0),
              0.8413447460685429 + 0.24197072451914337, 1e-12);
  // Scaling: EI(mu, s, b) = s * EI(mu / s, 1, b / s).
  EXPECT_NEAR(expectedImprovement(1.0, 2.0, 0.5),
              2 * expectedImprovement(0.5, 1.0, 0.25), 1e-12);
  // No uncertainty: the plain improvement.
  EXPECT_DOUBLE_EQ(expectedImprovement(3.0, 0.0, 2.0), 1.0);
  EXPECT_DOUBLE_EQ(expectedImprovement(1.0, 0.0, 2.0), 0.0);
  // Margin xi shifts the incumbent.
  EXPECT_NEAR(expectedImprovement(3.0, 1.0, 2.0, 1.0),
              expectedImprovement(3.0, 1.0, 3.0), 1e-15);
  EXPECT_DOUBLE_EQ(upperConfidenceBound(1.0, 0.5, 2.0), 2.0);
}

} // namespace
